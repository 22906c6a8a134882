package fsx

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/msync/msync/internal/xattr"
	"golang.org/x/sys/unix"
)

// XattrNamespaces returns the xattrs msync copies: the user. namespace and
// the POSIX ACLs (xattr.ACLAccess and ACLDefault; an owner may set them
// on their own files) always, and the trusted. and security. namespaces
// when running as root (only root may set them). An element ending in "."
// is a namespace; any other names one attribute.
func XattrNamespaces() []string {
	if os.Geteuid() == 0 {
		return []string{"user.", "trusted.", "security.", xattr.ACLAccess, xattr.ACLDefault}
	}
	return []string{"user.", xattr.ACLAccess, xattr.ACLDefault}
}

// HasACLs reports whether ns (as XattrNamespaces returns) takes in the
// POSIX ACLs.
func HasACLs(ns []string) bool {
	return slices.Contains(ns, xattr.ACLAccess) || slices.Contains(ns, xattr.ACLDefault)
}

func wanted(name string, ns []string) bool {
	for _, p := range ns {
		if strings.HasSuffix(p, ".") && strings.HasPrefix(name, p) || name == p {
			return true
		}
	}
	return false
}

// ACLSupport reports whether the file system holding path (a directory or
// file, not a symlink) supports POSIX ACLs: a read of its access ACL finds
// one or finds none (ENODATA) rather than failing with EOPNOTSUPP.
func ACLSupport(path string) (bool, error) {
	_, err := unix.Lgetxattr(path, xattr.ACLAccess, nil)
	switch err {
	case nil, unix.ENODATA, unix.ERANGE:
		return true, nil
	case unix.EOPNOTSUPP:
		return false, nil
	}
	return false, &os.PathError{Op: "getxattr " + xattr.ACLAccess, Path: path, Err: err}
}

// SetXattrError is the error of setting (op "setxattr") or removing
// ("removexattr") the xattr name of path: an ACL is called one, without
// the path (its callers name the object; SetXattrs gets a /proc path),
// and a file system that does not support ACLs says so plainly.
func SetXattrError(op, name, path string, err error) error {
	if xattr.IsACL(name) {
		op = map[string]string{"setxattr": "set ACL", "removexattr": "remove ACL"}[op]
		if err == unix.EOPNOTSUPP {
			return fmt.Errorf("%s %s: the destination's file system does not support POSIX ACLs: %w", op, name, err)
		}
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	if path == "" {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	return &os.PathError{Op: op + " " + name, Path: path, Err: err}
}

// ListXattrs reads the extended attributes of path (not following a final
// symlink) in the given namespaces, sorted by name.
func ListXattrs(path string, ns []string) ([]xattr.Xattr, error) {
	return listXattrs(path, ns, make([]byte, 1024), func(b []byte) (int, error) { return unix.Llistxattr(path, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// ListXattrsFd is ListXattrs for the file open as fd (path names it in
// errors): no path lookup, where the caller has the file open anyway. buf
// (1 KiB or more) holds the list of names; it is not kept.
func ListXattrsFd(fd int, path string, ns []string, buf []byte) ([]xattr.Xattr, error) {
	return listXattrs(path, ns, buf, func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

// noListxattrat is set once listxattrat(2) turned out to be missing (Linux
// before 6.13): ListXattrsAt then lists by path.
var noListxattrat atomic.Bool

// ListXattrsAt is ListXattrs for the entry cname (NUL-terminated, as
// ReadDir passes it) of directory dirfd; path names it in errors and is the
// fallback. The list is read with listxattrat(2), which looks up one name
// in dirfd instead of every component of path: a scan reads the xattrs of
// each file it lists, and the walk of a deep path cost as much as the
// lstat. Values (rare) are read by path, or through dirfd's /proc path when
// path is longer than the kernel takes or is not absolute (only a name).
// buf (1 KiB or more) holds the list of names; it is not kept.
func ListXattrsAt(dirfd int, cname []byte, path string, ns []string, buf []byte) ([]xattr.Xattr, error) {
	if len(cname) < 2 || cname[len(cname)-1] != 0 {
		return nil, &os.PathError{Op: "listxattr", Path: path, Err: unix.EINVAL}
	}
	byPath := path
	if len(path) >= 3800 || !strings.HasPrefix(path, "/") {
		// Too long for the kernel, or only a name (a module-relative
		// path, a path relative to a root): reach it through dirfd.
		byPath = ProcPath(dirfd, string(cname[:len(cname)-1]))
	}
	list := func(b []byte) (int, error) { return unix.Llistxattr(byPath, b) }
	if !noListxattrat.Load() {
		list = func(b []byte) (int, error) {
			n, err := listxattrat(dirfd, cname, b)
			if err == unix.ENOSYS {
				noListxattrat.Store(true)
				return unix.Llistxattr(byPath, b)
			}
			return n, err
		}
	}
	return listXattrs(path, ns, buf, list, func(name string, b []byte) (int, error) { return unix.Lgetxattr(byPath, name, b) })
}

func listxattrat(dirfd int, cname, buf []byte) (int, error) {
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	n, _, errno := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(&cname[0])),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(p), uintptr(len(buf)), 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func listXattrs(path string, ns []string, buf []byte, list func([]byte) (int, error), get func(string, []byte) (int, error)) ([]xattr.Xattr, error) {
	if len(buf) < 1024 {
		buf = make([]byte, 1024)
	}
	var n int
	for {
		var err error
		n, err = list(buf)
		if err == unix.ERANGE {
			buf = make([]byte, 2*len(buf))
			if len(buf) > 1<<20 {
				return nil, fmt.Errorf("listxattr %s: list too long", path)
			}
			continue
		}
		if err == unix.ENOTSUP || err == unix.EPERM {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
		}
		break
	}
	if n == 0 {
		return nil, nil
	}
	var out []xattr.Xattr
	for name := range bytes.SplitSeq(buf[:n], []byte{0}) {
		if len(name) == 0 || !wanted(string(name), ns) {
			continue
		}
		val, err := getXattr(path, string(name), get)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, xattr.Xattr{Name: string(name), Value: val})
	}
	slices.SortFunc(out, func(a, b xattr.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func getXattr(path, name string, get func(string, []byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := get(name, buf)
		if err == unix.ERANGE {
			if len(buf) >= 1<<20 {
				return nil, fmt.Errorf("getxattr %s %s: value too long", path, name)
			}
			buf = make([]byte, 4*len(buf))
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		return buf[:n:n], nil
	}
}

// SetXattrs makes the xattrs of path in ns exactly want: it sets those that
// differ and removes those not in want.
func SetXattrs(path string, want []xattr.Xattr, ns []string) error {
	have, err := ListXattrs(path, ns)
	if err != nil {
		return err
	}
	if xattr.Equal(have, want) {
		return nil
	}
	keep := map[string]bool{}
	for _, x := range want {
		keep[x.Name] = true
		if err := unix.Lsetxattr(path, x.Name, x.Value, 0); err != nil {
			return SetXattrError("setxattr", x.Name, path, err)
		}
	}
	for _, x := range have {
		if !keep[x.Name] {
			if err := unix.Lremovexattr(path, x.Name); err != nil && err != unix.ENODATA {
				return SetXattrError("removexattr", x.Name, path, err)
			}
		}
	}
	return nil
}
