package fsx

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// ListXattrsFd reads through a descriptor what ListXattrs reads by path:
// sorted, filtered by namespace, past the first sizes of both buffers.
func TestListXattrsFdMatchesPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var want []manifest.Xattr
	for i := range 30 { // 30 names of 35 bytes: a list longer than 1 KiB
		x := manifest.Xattr{Name: fmt.Sprintf("user.attribute-with-a-long-name-%02d", i), Value: []byte(fmt.Sprint(i))}
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
		if !manifest.XattrsEqual(byFd, want) || !manifest.XattrsEqual(byPath, want) {
			t.Fatalf("by descriptor %d xattrs, by path %d, want %d", len(byFd), len(byPath), len(want))
		}
	}
	if none, err := ListXattrsFd(fd, p, []string{"trusted.nothing."}, nil); err != nil || len(none) != 0 {
		t.Fatalf("other namespace: %v, %v", none, err)
	}
}
