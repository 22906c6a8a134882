package rsync

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/msync/msync/manifest"
)

// pushList is the file list of a push, the one thing of the source tree a
// push keeps in memory: rsync's receiver asks for files by their index in
// the list, after the whole list was sent. Each entry keeps only what the
// list, the sender and the final re-check read (listFile: 72 bytes, plus
// the path and a symlink's target, plus 4 bytes of wire order); no hash,
// xattrs or pointer per entry.
type pushList struct {
	files []listFile // in manifest order, as scanned
	wire  []int32    // the receiver's index -> files; sorted by sort
}

// listFile is one entry of a pushList.
type listFile struct {
	name               string // the path; a symlink's target follows after a NUL
	size, mtime, ctime int64
	dev, ino           uint64 // a device's number in dev
	mode, uid, gid     uint32
	typ                manifest.Type
	created            bool // the last committed source manifest had no such path
}

// add appends e, which comes after every entry added before in manifest
// order.
func (l *pushList) add(e *manifest.Entry, created bool) {
	f := listFile{name: e.Path, size: e.Size, mtime: e.Mtime, ctime: e.Ctime, dev: e.Dev, ino: e.Inode,
		mode: e.Mode, uid: e.UID, gid: e.GID, typ: e.Type, created: created}
	switch e.Type {
	case manifest.TypeSymlink:
		f.name = e.Path + "\x00" + e.LinkTarget
	case manifest.TypeChar, manifest.TypeBlock, manifest.TypeFifo, manifest.TypeSocket:
		f.dev, f.ino = e.Rdev, 0
	}
	l.files = append(l.files, f)
}

// sort puts the list in the order the receiver indexes it (sendList's).
func (l *pushList) sort() {
	l.wire = make([]int32, len(l.files))
	for i := range l.wire {
		l.wire[i] = int32(i)
	}
	slices.SortFunc(l.wire, func(a, b int32) int {
		return strings.Compare(l.files[a].wireName(), l.files[b].wireName())
	})
}

func (f *listFile) path() string {
	p, _, _ := strings.Cut(f.name, "\x00")
	return p
}

// wireName is the name as sent: "." for the root.
func (f *listFile) wireName() string {
	if f.name == "" {
		return "."
	}
	return f.path()
}

// entry returns f as a manifest entry.
func (f *listFile) entry() *manifest.Entry {
	e := &manifest.Entry{Path: f.name, Type: f.typ, Mode: f.mode, UID: f.uid, GID: f.gid, Size: f.size,
		Mtime: f.mtime, Ctime: f.ctime, Dev: f.dev, Inode: f.ino}
	switch f.typ {
	case manifest.TypeSymlink:
		e.Path, e.LinkTarget, _ = strings.Cut(f.name, "\x00")
	case manifest.TypeChar, manifest.TypeBlock, manifest.TypeFifo, manifest.TypeSocket:
		e.Dev, e.Rdev = 0, f.dev
	}
	return e
}

func (l *pushList) len() int { return len(l.wire) }

func (l *pushList) at(ndx int) (string, *manifest.Entry) {
	f := &l.files[l.wire[ndx]]
	return f.wireName(), f.entry()
}

// file returns the entry at the receiver's index ndx.
func (l *pushList) file(ndx int32) *listFile { return &l.files[l.wire[ndx]] }

// moved merges a re-scan of the source (in manifest order) with the list
// and returns the paths that differ, in manifest order: rsync's quick
// check (type, size, mtime), mode and a symlink's target.
func (l *pushList) moved(again manifest.Iterator) ([]string, error) {
	var out []string
	i := 0
	for {
		n, err := again.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		for ; i < len(l.files) && manifest.Compare(l.files[i].path(), n.Path) < 0; i++ {
			out = append(out, l.files[i].path()) // vanished
		}
		if i == len(l.files) || l.files[i].path() != n.Path {
			out = append(out, n.Path) // appeared
			continue
		}
		if o := l.files[i].entry(); o.Type != n.Type || o.Size != n.Size || o.Mtime != n.Mtime || o.Mode != n.Mode || o.LinkTarget != n.LinkTarget {
			out = append(out, n.Path)
		}
		i++
	}
	for ; i < len(l.files); i++ {
		out = append(out, l.files[i].path())
	}
	return out, nil
}
