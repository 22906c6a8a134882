package fsx

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/internal/xattr"
	"golang.org/x/sys/unix"
)

// ListXattrsFd reads through a descriptor what ListXattrs reads by path:
// sorted, filtered by namespace, past the first sizes of both buffers.
func TestListXattrsFdMatchesPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var want []xattr.Xattr
	for i := range 30 { // 30 names of 35 bytes: a list longer than 1 KiB
		x := xattr.Xattr{Name: fmt.Sprintf("user.attribute-with-a-long-name-%02d", i), Value: []byte(fmt.Sprint(i))}
		if i == 7 {
			x.Value = bytes.Repeat([]byte("v"), 1500) // past getxattr's first 256 bytes
		}
		if err := unix.Setxattr(p, x.Name, x.Value, 0); err != nil {
			t.Fatalf("setxattr (needs a file system with user xattrs): %v", err)
		}
		want = append(want, x)
	}
	byPath, err := ListXattrs(p, []string{"user."})
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, buf := range [][]byte{nil, make([]byte, 1024)} {
		byFd, err := ListXattrsFd(fd, p, []string{"user."}, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !xattr.Equal(byFd, want) || !xattr.Equal(byPath, want) {
			t.Fatalf("by descriptor %d xattrs, by path %d, want %d", len(byFd), len(byPath), len(want))
		}
	}
	if none, err := ListXattrsFd(fd, p, []string{"trusted.nothing."}, nil); err != nil || len(none) != 0 {
		t.Fatalf("other namespace: %v, %v", none, err)
	}
}

// ListXattrsAt lists by directory and name what ListXattrs lists by path;
// the list comes from listxattrat(2), not the path (a wrong path still
// works where the values are not read), and a final symlink is not followed.
func TestListXattrsAt(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var want []xattr.Xattr
	for i := range 30 { // a list longer than the 1 KiB buffer
		x := xattr.Xattr{Name: fmt.Sprintf("user.attribute-with-a-long-name-%02d", i), Value: []byte(fmt.Sprint(i))}
		if err := unix.Setxattr(p, x.Name, x.Value, 0); err != nil {
			t.Fatalf("setxattr (needs a file system with user xattrs): %v", err)
		}
		want = append(want, x)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	c := func(name string) []byte { return append([]byte(name), 0) }
	ns := []string{"user."}
	got, err := ListXattrsAt(dfd, c("f"), p, ns, make([]byte, 1024))
	if err != nil || !xattr.Equal(got, want) {
		t.Fatalf("got %d xattrs (%v), want %d", len(got), err, len(want))
	}
	wrong := filepath.Join(dir, "no-such-dir", "f")
	if got, err := ListXattrsAt(dfd, c("f"), wrong, []string{"trusted.nothing."}, nil); err != nil || len(got) != 0 {
		if noListxattrat.Load() && os.Getenv("CI") == "" {
			t.Skip("SKIP: listxattrat(2) is missing here (Linux before 6.13): only the path is used")
		}
		t.Fatalf("the list was read by path: %v, %v", got, err)
	}
	// Following the link would list f's names and then fail to read their
	// values by the wrong path.
	if got, err := ListXattrsAt(dfd, c("link"), wrong, ns, nil); err != nil || len(got) != 0 {
		t.Fatalf("through a symlink: %v, %v", got, err)
	}
	if _, err := ListXattrsAt(dfd, []byte("f"), p, ns, nil); err == nil {
		t.Fatal("a name without its NUL was taken")
	}

	// Without listxattrat, the path is used: the wrong one fails, the right one works.
	noListxattrat.Store(true)
	defer noListxattrat.Store(false)
	if _, err := ListXattrsAt(dfd, c("f"), wrong, []string{"trusted.nothing."}, nil); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("fallback with a wrong path: %v, want ENOENT", err)
	}
	if got, err := ListXattrsAt(dfd, c("f"), p, ns, nil); err != nil || !xattr.Equal(got, want) {
		t.Fatalf("fallback: %d xattrs (%v), want %d", len(got), err, len(want))
	}
}

// A path longer than the kernel takes reads values through dirfd's /proc path.
func TestListXattrsAtLongPath(t *testing.T) {
	dir := t.TempDir()
	deep := dir
	for len(deep) < 4000 {
		deep = filepath.Join(deep, strings.Repeat("d", 200))
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(deep, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fsetxattr(fd, "user.k", []byte("v"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	unix.Close(fd)
	for _, fallback := range []bool{false, true} {
		noListxattrat.Store(fallback)
		got, err := ListXattrsAt(dfd, []byte("f\x00"), filepath.Join(deep, "f"), []string{"user."}, nil)
		if err != nil || len(got) != 1 || string(got[0].Value) != "v" {
			t.Fatalf("fallback %v: %v, %v", fallback, got, err)
		}
	}
	noListxattrat.Store(false)
}

// An element of ns without a trailing dot names one attribute: the ACLs
// are read and set by name, and nothing else of "system." comes along.
func TestXattrsACLByName(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// user::rw- user:1234:rw- group::r-- mask::rw- other::r--, in the
	// kernel's form (version 2, then tag, perm, id per entry).
	acl := []byte{2, 0, 0, 0,
		1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		2, 0, 6, 0, 0xd2, 0x04, 0, 0,
		4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(a, xattr.ACLAccess, acl, 0); err != nil {
		if err == unix.EOPNOTSUPP && os.Getenv("CI") == "" {
			t.Skipf("SKIP: no ACLs on %s", dir)
		}
		t.Fatal(err)
	}
	if err := unix.Setxattr(a, "user.x", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	xs, err := ListXattrs(a, []string{xattr.ACLAccess, xattr.ACLDefault})
	if err != nil || len(xs) != 1 || xs[0].Name != xattr.ACLAccess {
		t.Fatalf("ListXattrs by ACL names: %v %v", xs, err)
	}
	ns := XattrNamespaces()
	if !HasACLs(ns) {
		t.Fatalf("XattrNamespaces() = %v: no ACLs", ns)
	}
	all, err := ListXattrs(a, ns)
	if err != nil || len(all) != 2 {
		t.Fatalf("ListXattrs(%v) = %v %v", ns, all, err)
	}
	if err := SetXattrs(b, all, ns); err != nil {
		t.Fatal(err)
	}
	got, err := ListXattrs(b, ns)
	if err != nil || !xattr.Equal(got, all) {
		t.Fatalf("copied: %v %v, want %v", got, err, all)
	}
	var st unix.Stat_t
	if err := unix.Stat(b, &st); err != nil || st.Mode&0o777 != 0o664 {
		t.Fatalf("mode after the ACL: %o %v (the mask sets the group bits)", st.Mode&0o777, err)
	}
	if ok, err := ACLSupport(dir); !ok || err != nil {
		t.Fatalf("ACLSupport(%s) = %v %v", dir, ok, err)
	}
	if err := SetXattrs(b, nil, ns); err != nil {
		t.Fatal(err)
	}
	if got, _ := ListXattrs(b, ns); len(got) != 0 {
		t.Fatalf("left after removal: %v", got)
	}
}
