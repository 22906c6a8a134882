package fsx

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// File is a regular file open for reading through its raw descriptor. It
// stands in for os.File on paths that open a file per file of a tree: an
// os.File asks the kernel about the descriptor when it is made (fcntl) and
// closes through the runtime's poller, which costs more than a small file's
// read.
type File struct {
	fd   int
	name string // for errors
}

// NewFile takes over the descriptor fd of the file called name.
func NewFile(fd int, name string) *File { return &File{fd: fd, name: name} }

// Fd returns the descriptor, valid until Close.
func (f *File) Fd() int { return f.fd }

// Name returns the name the file was opened as.
func (f *File) Name() string { return f.name }

// Read reads up to len(p) bytes; it returns io.EOF at the end of the file.
func (f *File) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// ReadAt reads len(p) bytes at off, or fewer with io.EOF at the end.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(f.fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, &os.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 {
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

// Close closes the descriptor; later calls do nothing.
func (f *File) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}
