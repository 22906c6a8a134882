package engine

import (
	"io"
	"os"

	"github.com/msync/msync/internal/fsx"
	"golang.org/x/sys/unix"
)

// tmpFile is a new destination file being written, held as a bare
// descriptor: an *os.File costs an fcntl, a finalizer and poller set-up per
// file, which a pass of many small files pays thousands of times.
type tmpFile struct {
	fd int
	// mode is the permission bits it was made with, less the umask, or
	// noMode.
	mode uint32
}

// noMode is a tmpFile.mode that is no file's.
const noMode = ^uint32(0)

func (f *tmpFile) Write(p []byte) (int, error) {
	return fsx.WriteAll(p, func(b []byte, _ int64) (int, error) { return unix.Write(f.fd, b) })
}

// WriteAt writes p at off, leaving the file offset alone.
func (f *tmpFile) WriteAt(p []byte, off int64) (int, error) {
	return fsx.WriteAll(p, func(b []byte, done int64) (int, error) { return unix.Pwrite(f.fd, b, off+done) })
}

// Rewind empties the file and starts writing it again from the start.
func (f *tmpFile) Rewind() error {
	if _, err := unix.Seek(f.fd, 0, io.SeekStart); err != nil {
		return err
	}
	return unix.Ftruncate(f.fd, 0)
}

func (f *tmpFile) Truncate(size int64) error { return unix.Ftruncate(f.fd, size) }
func (f *tmpFile) Sync() error               { return unix.Fsync(f.fd) }

// Close closes the descriptor; closing twice is an error, not a hazard.
func (f *tmpFile) Close() error {
	if f.fd < 0 {
		return os.ErrClosed
	}
	err := unix.Close(f.fd)
	f.fd = -1
	return err
}
