package engine

import (
	"errors"
	"fmt"
	"io"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"

	"golang.org/x/sys/unix"
)

// ErrDestBusy is wrapped by the error of a pass whose destination another
// pass is writing to.
var ErrDestBusy = errors.New("another msync pass is writing to this destination")

// lockDest takes an exclusive lock on the destination directory itself,
// on its own descriptor (flock: nothing is written at DST), for the whole
// pass: a second pass into the same tree fails at once, whatever its state
// directory and whichever route it came by (local, ssh, either daemon),
// since each runs this engine on DST's host. The returned function
// releases it. A file system that cannot lock directories (NFS emulates
// flock with POSIX locks, which want a descriptor open for writing) is
// noted in log and the pass goes on unlocked.
// A destination already open (a daemon's, root) is locked through a
// descriptor of its own on that directory, never looked up again by name.
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
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == nil:
	case err == unix.EWOULDBLOCK:
		unix.Close(fd)
		return nil, fmt.Errorf("destination %s: %w (it holds a lock on the directory); wait for it to end, one pass at a time", dst, ErrDestBusy)
	case err == unix.ENOLCK || err == unix.EBADF || err == unix.EOPNOTSUPP || err == unix.EINVAL:
		unix.Close(fd)
		fmt.Fprintf(log, "msync: destination %s: cannot lock it on this file system (%s); make sure no other pass writes to it at the same time\n", manifest.Escape(dst), manifest.EscapeLines(err.Error()))
		return func() {}, nil
	default:
		unix.Close(fd)
		return nil, fmt.Errorf("lock destination %s: %w", dst, err)
	}
	if h := TestHooks.DestLocked; h != nil {
		h(dst)
	}
	return func() { unix.Close(fd) }, nil
}
