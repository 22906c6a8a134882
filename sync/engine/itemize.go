package engine

import (
	"github.com/msync/msync/manifest"
)

// Itemize reports the planner's actions as rsync's --itemize-changes does
// (its %i format, "YXcstpoguax"): one Item per action that changes the
// destination, before the action is applied.

// metaCheck compares the metadata a pass carries.
type metaCheck struct {
	owners bool // user and group ids
	xattrs bool // extended attributes and ACLs
}

// flags returns rsync's itemize letters for what differs apart from
// content: positions t, p, o, g, a (ACLs) and x of "YXcstpoguax".
func (c metaCheck) flags(s, d *manifest.Entry) (code [11]byte, differs bool) {
	for i := range code {
		code[i] = '.'
	}
	if s.Mtime != d.Mtime {
		code[4], differs = 't', true
	}
	if s.Type != manifest.TypeSymlink && s.Mode != d.Mode {
		code[5], differs = 'p', true
	}
	if c.owners && s.UID != d.UID {
		code[6], differs = 'o', true
	}
	if c.owners && s.GID != d.GID {
		code[7], differs = 'g', true
	}
	if c.xattrs {
		if x, a := manifest.XattrsDiffer(s.Xattrs, d.Xattrs); x || a {
			if a {
				code[9] = 'a'
			}
			if x {
				code[10] = 'x'
			}
			differs = true
		}
	}
	return code, differs
}

func typeLetter(t manifest.Type) byte {
	switch t {
	case manifest.TypeFile:
		return 'f'
	case manifest.TypeDir:
		return 'd'
	case manifest.TypeSymlink:
		return 'L'
	case manifest.TypeChar, manifest.TypeBlock:
		return 'D'
	}
	return 'S'
}

// itemize returns the Item of a, and false for an action that changes
// nothing at the destination.
func itemize(c metaCheck, a *action) (Item, bool) {
	var code, note string
	e := a.s
	switch a.op {
	case actDelete, actReplace:
		code, e = "*deleting  ", a.d
	case actCreate:
		switch {
		case a.s.Type == manifest.TypeDir:
			code = "cd+++++++++"
		case a.d == nil:
			code = "c" + string(typeLetter(a.s.Type)) + "+++++++++"
		default:
			code = "c" + string(typeLetter(a.s.Type)) + "c.t......"
		}
		note = linkNote(a.s)
	case actMeta:
		f, _ := c.flags(a.s, a.d)
		f[0], f[1] = '.', typeLetter(a.s.Type)
		code, note = string(f[:]), linkNote(a.s)
	case actLink:
		code, note = "h"+string(typeLetter(a.s.Type))+"+++++++++", " => "+a.leader.path
	case actCopy:
		code = ">f+++++++++"
		if a.d != nil {
			f, _ := c.flags(a.s, a.d)
			f[0], f[1] = '>', 'f'
			if a.d.Size != a.s.Size {
				f[3] = 's'
			}
			code = string(f[:])
		}
	default:
		return Item{}, false
	}
	path := e.Path
	if e.Type == manifest.TypeDir {
		if path == "" {
			path = "."
		}
		path += "/"
	}
	return Item{Code: code, Path: path, Note: note}, true
}

// linkNote is rsync's " -> target" after a symlink.
func linkNote(s *manifest.Entry) string {
	if s.Type == manifest.TypeSymlink {
		return " -> " + s.LinkTarget
	}
	return ""
}
