package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLinkAnon(t *testing.T) {
	defer noEmptyPath.Store(false)
	for _, viaProc := range []bool{false, true} {
		noEmptyPath.Store(viaProc)
		dir := t.TempDir()
		dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(dirfd)
		anon := func(data string) int {
			fd, err := unix.Openat(dirfd, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := unix.Write(fd, []byte(data)); err != nil {
				t.Fatal(err)
			}
			return fd
		}
		fd := anon("hello")
		if err := linkAnon(fd, dirfd, "a"); err != nil {
			t.Fatalf("via /proc %v: %v", viaProc, err)
		}
		unix.Close(fd)
		if b, err := os.ReadFile(filepath.Join(dir, "a")); err != nil || string(b) != "hello" {
			t.Fatalf("via /proc %v: linked file reads %q, %v", viaProc, b, err)
		}
		if !viaProc && os.Geteuid() == 0 && noEmptyPath.Load() {
			t.Fatal("root fell back to the /proc way")
		}
		fd = anon("other")
		if err := linkAnon(fd, dirfd, "a"); !errors.Is(err, unix.EEXIST) {
			t.Fatalf("via /proc %v: linking over an existing name: %v, want EEXIST", viaProc, err)
		}
		unix.Close(fd)
		// A directory removed meanwhile: a real ENOENT, which must not
		// switch a privileged process to the /proc way.
		sub := filepath.Join(dir, "sub")
		os.Mkdir(sub, 0o755)
		subfd, err := unix.Open(sub, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fd = anon("x")
		os.Remove(sub)
		if err := linkAnon(fd, subfd, "b"); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("via /proc %v: linking into a removed directory: %v, want ENOENT", viaProc, err)
		}
		unix.Close(fd)
		unix.Close(subfd)
		if !viaProc && os.Geteuid() == 0 && noEmptyPath.Load() {
			t.Fatal("a real ENOENT switched root to the /proc way")
		}
	}
}

func TestTmpFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f := &tmpFile{fd: fd}
	if _, err := f.Write([]byte("first try")); err != nil {
		t.Fatal(err)
	}
	if err := f.Rewind(); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("hello world"))
	f.WriteAt([]byte("W"), 6)
	if err := f.Truncate(20); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
	b, _ := os.ReadFile(p)
	if want := "hello World\x00\x00\x00\x00\x00\x00\x00\x00\x00"; string(b) != want {
		t.Fatalf("file holds %q, want %q", b, want)
	}
}
