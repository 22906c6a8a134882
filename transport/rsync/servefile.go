package rsync

import (
	"context"
	"os"
	"strings"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/tree"
	"golang.org/x/sys/unix"
)

// A push names its destination as stock rsync's receiver does
// (get_local_name): when the client sends one file that is not a
// directory, and the destination path names no directory (nothing is
// there, or a regular file), that path is the file's own name: "rsync
// file host::m/newname" writes newname. Otherwise the path is a directory,
// made if missing, and the files go into it. The choice needs the file
// list, so such a destination is resolved to its parent and its last name
// (target.file), and decided by pushOfOne once the list is in.

// mayNameFile reports whether a push's requested path p may name a file:
// not a directory by its spelling ("dir/", "dir/.", a module's root).
func mayNameFile(p string) bool {
	return p != "" && p != "." && !strings.HasSuffix(p, "/") && !strings.HasSuffix(p, "/.")
}

// resolveFileBeneath opens the parent of a push's destination rel beneath
// base, made if missing, when rel names nothing or a regular file there
// (ok); a directory or anything else is left to resolveBeneath (!ok).
func resolveFileBeneath(base *fsx.Root, rel string) (t *target, ok bool, err error) {
	parent, name := fsx.Split(rel)
	created, err := base.MkdirAll(parent, 0o755)
	if err != nil {
		return nil, false, err
	}
	dir, err := base.OpenDir(parent)
	if err != nil {
		return nil, false, err
	}
	var st unix.Stat_t
	err = unix.Fstatat(dir.Fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT || err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		return &target{dir: dir, file: name, created: created}, true, nil
	}
	dir.Close()
	return nil, false, nil
}

// pushOfOne reads the file list of a push into t, whose last name
// (t.file) is not decided yet, and decides it: the list's one file takes
// that name (one), or the name becomes a directory, made now, and t is
// turned into it. It returns the source for the pass, whose scan is the
// list already read.
func (ss *session) pushOfOne(ctx context.Context, c *Client, t *target) (src *listedClient, one bool, err error) {
	s, err := c.Scan(ctx, tree.ScanConfig{})
	if err != nil {
		return nil, false, err
	}
	ls := s.(*listScan)
	src = &listedClient{Client: c, scan: s}
	// The list begins with c.root when the client sent no top directory.
	if len(ls.entries) == 2 && ls.entries[0] == c.root && ls.entries[1].Type != manifest.TypeDir {
		e := ls.entries[1]
		if ndx, ok := c.list.index[e.Path]; ok {
			delete(c.list.index, e.Path)
			c.list.index[t.file] = ndx
		}
		e.Path = t.file
		return src, true, nil
	}
	if err := unix.Mkdirat(t.dir.Fd(), t.file, 0o755); err != nil {
		return nil, false, &os.PathError{Op: "mkdir", Path: t.dir.Join(t.file), Err: err}
	}
	d, err := t.dir.OpenDir(t.file)
	if err != nil {
		return nil, false, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.Fd(), &st); err != nil {
		d.Close()
		return nil, false, &os.PathError{Op: "stat", Path: d.Path, Err: err}
	}
	t.dir.Close()
	t.dir, t.file, t.created = d, "", true
	if ls.entries[0] == c.root {
		c.root = scan.FromStat("", &st)
		ls.entries[0] = c.root
	}
	return src, false, nil
}

// listedClient is a Client whose file list pushOfOne has read: the pass's
// scan is that list.
type listedClient struct {
	*Client
	scan tree.Scan
}

func (l *listedClient) Scan(context.Context, tree.ScanConfig) (tree.Scan, error) { return l.scan, nil }
