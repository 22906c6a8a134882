// Package fsx performs file system operations relative to directory file
// descriptors (the *at system calls), never following symbolic links in any
// component. Every path it takes is relative to a root directory and is
// checked with relpath.Valid first, so nothing it does can reach outside
// that root, even when a directory is replaced by a symlink concurrently.
package fsx

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/msync/msync/internal/relpath"
	"golang.org/x/sys/unix"
)

// Root is a directory that paths are resolved beneath.
type Root struct {
	// Path names the root in messages. For a root from OpenRoot it is the
	// host path; for one from OpenRootAs or OpenDir it is only a name
	// (a daemon's module-relative path) and is never opened.
	Path string
	fd   int
	host bool // Path is the host path of the directory
}

// OpenRoot opens dir as a Root.
func OpenRoot(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Root{Path: dir, fd: fd, host: true}, nil
}

// OpenRootAs opens dir as a Root named name: what a daemon serves as a
// module, so that messages never show where the module lives on the host.
func OpenRootAs(dir, name string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return &Root{Path: name, fd: fd}, nil
}

// Close closes the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Fd returns the root's descriptor; it stays owned by r.
func (r *Root) Fd() int { return r.fd }

// HostPath reports whether Path is the root's path on this host, which
// calls without an *at form may use; otherwise it is only a name.
func (r *Root) HostPath() bool { return r.host }

// Dup returns a Root on the same directory with a descriptor of its own,
// for a user that closes its root when done.
func (r *Root) Dup() (*Root, error) {
	fd, err := unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: r.Path, Err: err}
	}
	return &Root{Path: r.Path, fd: fd, host: r.host}, nil
}

// Join returns the host path of rel, for messages.
func (r *Root) Join(rel string) string {
	if rel == "" {
		return r.Path
	}
	return strings.TrimSuffix(r.Path, "/") + "/" + rel
}

// Dirs caches open descriptors along the most recently used directory path,
// so that operations in a depth-first walk cost one system call each. A Dirs
// is not safe for concurrent use; give each goroutine its own.
type Dirs struct {
	root  *Root
	paths []string // paths[i] is open as fds[i]; each an ancestor of the next
	fds   []int
}

// NewDirs returns an empty cache over root.
func (r *Root) NewDirs() *Dirs { return &Dirs{root: r} }

// Close closes every cached descriptor.
func (d *Dirs) Close() {
	for _, fd := range d.fds {
		unix.Close(fd)
	}
	d.paths, d.fds = nil, nil
}

// Forget drops cached descriptors at or below dir (after it was removed or renamed).
func (d *Dirs) Forget(dir string) {
	for i, p := range d.paths {
		if p == dir || relpath.IsAncestor(dir, p) {
			for _, fd := range d.fds[i:] {
				unix.Close(fd)
			}
			d.paths, d.fds = d.paths[:i], d.fds[:i]
			return
		}
	}
}

// Dir returns a descriptor of directory dir (relative to the root; "" is the
// root). The descriptor stays owned by the cache.
func (d *Dirs) Dir(dir string) (int, error) {
	if dir == "" {
		return d.root.fd, nil
	}
	if err := relpath.Valid(dir); err != nil {
		return -1, err
	}
	// Pop until the top is an ancestor of (or equal to) dir.
	for len(d.paths) > 0 {
		top := d.paths[len(d.paths)-1]
		if top == dir {
			return d.fds[len(d.fds)-1], nil
		}
		if relpath.IsAncestor(top, dir) {
			break
		}
		unix.Close(d.fds[len(d.fds)-1])
		d.paths, d.fds = d.paths[:len(d.paths)-1], d.fds[:len(d.fds)-1]
	}
	base, fd := "", d.root.fd
	if len(d.paths) > 0 {
		base, fd = d.paths[len(d.paths)-1], d.fds[len(d.fds)-1]
	}
	rest := dir
	if base != "" {
		rest = dir[len(base)+1:]
	}
	for _, name := range strings.Split(rest, "/") {
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if err == unix.ELOOP || err == unix.ENOTDIR {
				err = fmt.Errorf("not a directory (symlink or file in the way): %w", err)
			}
			return -1, &os.PathError{Op: "open", Path: d.root.Join(joinRel(base, name)), Err: err}
		}
		base = joinRel(base, name)
		d.paths = append(d.paths, base)
		d.fds = append(d.fds, nfd)
		fd = nfd
	}
	return fd, nil
}

func joinRel(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

// Split returns the parent directory and the name of a path; the root has
// no name and cannot be split.
func Split(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// At resolves p to its parent directory descriptor and final name.
func (d *Dirs) At(p string) (int, string, error) {
	if p == "" {
		return -1, "", errors.New("fsx: the root has no parent")
	}
	if err := relpath.Valid(p); err != nil {
		return -1, "", err
	}
	dir, name := Split(p)
	fd, err := d.Dir(dir)
	return fd, name, err
}

// ProcPath returns a /proc path that names name inside the directory open as
// dirfd, for the calls that have no *at form (the l*xattr family).
func ProcPath(dirfd int, name string) string {
	if name == "" {
		return "/proc/self/fd/" + strconv.Itoa(dirfd)
	}
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// Within reports whether the directory dir is the directory anc or lies
// beneath it, by identity (device and inode) rather than by name: dir's
// ancestors are reached by "..", so neither symlinks nor bind mounts hide
// that one is inside the other. A directory that cannot be opened is not
// within anything. relpath.Within is the same question asked of names.
func Within(dir, anc string) bool {
	var want unix.Stat_t
	if unix.Stat(anc, &want) != nil || want.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	for {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			break
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			unix.Close(fd)
			return true
		}
		up, err := unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		var ust unix.Stat_t
		if unix.Fstat(up, &ust) != nil || ust.Dev == st.Dev && ust.Ino == st.Ino {
			unix.Close(up)
			break // the file system's root is its own parent
		}
		unix.Close(fd)
		fd = up
	}
	unix.Close(fd)
	return false
}
