package fsx

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/msync/msync/internal/relpath"
	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2(2) turned out to be missing (Linux before
// 5.6, or a seccomp filter that does not know it): OpenDir then walks.
var noOpenat2 atomic.Bool

// OpenDir opens the directory rel beneath r ("" is r itself) as a Root
// named r's name joined with rel. No component of rel may be a symlink and
// the lookup never leaves r, however the tree changes meanwhile: it is one
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) from r's descriptor, or
// where the kernel lacks openat2 a walk of openat(O_NOFOLLOW) calls. This
// is how a daemon reaches the directory a client names: never by a path
// string checked earlier.
func (r *Root) OpenDir(rel string) (*Root, error) {
	if rel == "" {
		return r.Dup()
	}
	if err := relpath.Valid(rel); err != nil {
		return nil, &os.PathError{Op: "open", Path: r.Join(rel), Err: err}
	}
	fd, err := openBeneath(r.fd, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOTDIR || err == unix.EXDEV {
			err = fmt.Errorf("not a directory (symlink or file in the way): %w", err)
		}
		return nil, &os.PathError{Op: "open", Path: r.Join(rel), Err: err}
	}
	return &Root{Path: r.Join(rel), fd: fd, host: r.host}, nil
}

// MkdirAll creates directory rel beneath r and whichever of its parents
// are missing with mode perm (less the umask), like os.MkdirAll but never
// through a symlink nor outside r. It reports whether it created rel
// itself.
func (r *Root) MkdirAll(rel string, perm uint32) (created bool, err error) {
	if rel == "" {
		return false, nil
	}
	if err := relpath.Valid(rel); err != nil {
		return false, &os.PathError{Op: "mkdir", Path: r.Join(rel), Err: err}
	}
	d := r.NewDirs()
	defer d.Close()
	end := 0
	for end < len(rel) {
		if i := strings.IndexByte(rel[end+1:], '/'); i >= 0 {
			end += 1 + i
		} else {
			end = len(rel)
		}
		p := rel[:end]
		dfd, name, err := d.At(p)
		if err != nil {
			return false, err
		}
		err = unix.Mkdirat(dfd, name, perm)
		switch {
		case err == nil:
			created = true
		case err == unix.EEXIST:
			// The next lookup refuses anything but a directory; the last
			// component is checked here.
			created = false
			var st unix.Stat_t
			if end == len(rel) {
				if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					return false, &os.PathError{Op: "lstat", Path: r.Join(p), Err: err}
				}
				if st.Mode&unix.S_IFMT != unix.S_IFDIR {
					return false, &os.PathError{Op: "mkdir", Path: r.Join(p), Err: errors.New("not a directory (symlink or file in the way)")}
				}
			}
		default:
			return false, &os.PathError{Op: "mkdir", Path: r.Join(p), Err: err}
		}
	}
	return created, nil
}

// openBeneath opens rel (a valid relative path) beneath dirfd with flags,
// following no symlink in any component.
func openBeneath(dirfd int, rel string, flags int) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if !noOpenat2.Load() {
		how := &unix.OpenHow{Flags: uint64(flags),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	retry:
		for range 16 {
			fd, err := unix.Openat2(dirfd, rel, how)
			switch err {
			case unix.EAGAIN, unix.EINTR:
				continue // a concurrent rename: the kernel asks to retry
			case unix.ENOSYS:
				noOpenat2.Store(true)
				break retry
			case unix.EPERM:
				break retry // perhaps a seccomp filter: the walk answers as well
			}
			return fd, err
		}
	}
	fd, own := dirfd, false
	for {
		name, rest, more := strings.Cut(rel, "/")
		fl := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if !more {
			fl = flags
		}
		nfd, err := unix.Openat(fd, name, fl, 0)
		if own {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		if !more {
			return nfd, nil
		}
		fd, own, rel = nfd, true, rest
	}
}
