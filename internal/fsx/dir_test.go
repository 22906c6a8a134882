package fsx

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// ReadDir lists what os.ReadDir lists, over many getdents calls and twice
// on one descriptor; Lstatat describes each name without following links.
func TestReadDirAndLstatat(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 300 {
		name := fmt.Sprintf("f%03d %s", i, []string{"a", "\xff\xfe", "é", ".x", "..y"}[i%5])
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "link")
	slices.Sort(want)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, size := range []int{512, DirBufSize, DirBufSize} { // 512: dozens of calls
		var got []string
		err := ReadDir(fd, make([]byte, size), func(cname []byte) error {
			name := string(cname[:len(cname)-1])
			got = append(got, name)
			var st unix.Stat_t
			if err := Lstatat(fd, cname, &st); err != nil {
				return fmt.Errorf("lstat %q: %w", name, err)
			}
			wantMode := uint32(unix.S_IFREG)
			if name == "link" {
				wantMode = unix.S_IFLNK
			}
			if st.Mode&unix.S_IFMT != wantMode {
				return fmt.Errorf("%q: mode %o, want type %o", name, st.Mode, wantMode)
			}
			if wantMode == unix.S_IFREG && st.Size != int64(len(name)) {
				return fmt.Errorf("%q: size %d, want %d", name, st.Size, len(name))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("buffer %d: %v", size, err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("buffer %d: listed %d names, want %d (%q...)", size, len(got), len(want), got[:min(3, len(got))])
		}
	}
	var st unix.Stat_t
	if err := Lstatat(fd, []byte("gone\x00"), &st); err != unix.ENOENT {
		t.Errorf("Lstatat of a missing name: %v, want ENOENT", err)
	}
	if err := Lstatat(fd, []byte("link"), &st); err != unix.EINVAL {
		t.Errorf("Lstatat of a name without its NUL: %v, want EINVAL", err)
	}
	stop := fmt.Errorf("stop")
	if err := ReadDir(fd, make([]byte, 512), func([]byte) error { return stop }); err != stop {
		t.Errorf("ReadDir returned %v, want fn's error", err)
	}
}
