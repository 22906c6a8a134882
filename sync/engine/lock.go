package engine

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"

	"golang.org/x/sys/unix"
)

// ErrDestBusy is wrapped by the error of a pass whose destination another
// pass is writing to.
var ErrDestBusy = errors.New("another msync pass is writing to this destination")

// lockDest takes an exclusive lock on the destination directory itself,
// on its own descriptor (flock: nothing is written at DST), for the whole
// pass, and a shared lock on each directory above it up to the file
// system's root: a second pass into the same tree, into a directory inside
// it or into one around it fails at once (an exclusive lock meets the
// other's exclusive or shared one), whatever its state directory and
// whichever route it came by (local, ssh, either daemon), since each runs
// this engine on DST's host; passes into sibling directories share their
// ancestors' locks. The returned function releases them. A file system
// that cannot lock directories (NFS emulates flock with POSIX locks, which
// want a descriptor open for writing) is noted in log for DST and passed
// over silently for an ancestor, as is an ancestor this process may not
// read; the pass goes on without those locks.
// A destination already open (a daemon's, root) is locked through a
// descriptor of its own on that directory, never looked up again by name,
// and its ancestors are reached by "..", from that descriptor; they are
// named in messages by DST's name and "..", never by a host path.
func lockDest(dst string, root *fsx.Root, log io.Writer) (func(), error) {
	var fd int
	var err error
	if root != nil {
		fd, err = unix.Openat(root.Fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		fd, err = unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("lock destination %s: %w", dst, err)
	}
	switch err = flock(fd, unix.LOCK_EX); {
	case err == nil:
	case err == unix.EWOULDBLOCK:
		unix.Close(fd)
		return nil, fmt.Errorf("destination %s: %w (it holds a lock on the directory, or on one inside it); wait for it to end, one pass at a time", dst, ErrDestBusy)
	case noFlock(err):
		unix.Close(fd)
		fmt.Fprintf(log, "msync: destination %s: cannot lock it on this file system (%s); make sure no other pass writes to it at the same time\n", manifest.Escape(dst), manifest.EscapeLines(err.Error()))
		return func() {}, nil
	default:
		unix.Close(fd)
		return nil, fmt.Errorf("lock destination %s: %w", dst, err)
	}
	held := []int{fd}
	unlock := func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}
	name := ancestorNamer(dst, root)
	cur := fd
	for level := 1; ; level++ {
		up, err := openParent(cur)
		if err != nil {
			break // beyond what this process may reach: nothing to lock
		}
		var a, b unix.Stat_t
		if unix.Fstat(cur, &a) != nil || unix.Fstat(up, &b) != nil || a.Dev == b.Dev && a.Ino == b.Ino {
			unix.Close(up)
			break // the file system's root is its own parent
		}
		held = append(held, up)
		cur = up
		switch err := flock(up, unix.LOCK_SH); {
		case err == nil:
		case err == unix.EWOULDBLOCK:
			unlock()
			return nil, fmt.Errorf("destination %s: %w into %s, a directory around it (it holds a lock on that directory); wait for it to end, one pass at a time", dst, ErrDestBusy, name(level))
		case noFlock(err):
			// Not lockable here (NFS, or only reachable as O_PATH): go on above.
		default:
			unlock()
			return nil, fmt.Errorf("lock %s, a directory around destination %s: %w", name(level), dst, err)
		}
	}
	if h := TestHooks.DestLocked; h != nil {
		h(dst)
	}
	return unlock, nil
}

// flock takes lock (LOCK_EX or LOCK_SH) on fd without waiting.
func flock(fd, lock int) error {
	for {
		err := unix.Flock(fd, lock|unix.LOCK_NB)
		if err != unix.EINTR {
			return err
		}
	}
}

// noFlock reports whether err says the file system cannot lock directories.
func noFlock(err error) bool {
	return err == unix.ENOLCK || err == unix.EBADF || err == unix.EOPNOTSUPP || err == unix.EINVAL
}

// openParent opens the parent of the directory open as fd, to be locked;
// a parent this process may search but not read is opened O_PATH (the
// walk goes on above it; flock fails with EBADF on it).
func openParent(fd int) (int, error) {
	up, err := unix.Openat(fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.EACCES || err == unix.EPERM {
		up, err = unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	return up, err
}

// ancestorNamer returns the name of DST's ancestor level levels up, for
// messages: for a local DST the directory's path (DST's own, symlinks
// resolved), for an open one (a daemon's) DST's name followed by "/..".
func ancestorNamer(dst string, root *fsx.Root) func(level int) string {
	if root == nil {
		if abs, err := filepath.Abs(dst); err == nil {
			if real, err := filepath.EvalSymlinks(abs); err == nil {
				return func(level int) string {
					p := real
					for range level {
						p = filepath.Dir(p)
					}
					return p
				}
			}
		}
	}
	return func(level int) string { return dst + strings.Repeat("/..", level) }
}
