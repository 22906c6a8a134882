package fsx

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func openRaw(t *testing.T, path string) *File {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return NewFile(fd, path)
}

func TestFileReads(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f := openRaw(t, p)
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll: %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end = %d, %v; want 0, EOF", n, err)
	}
	buf := make([]byte, 100)
	if n, err := f.ReadAt(buf, 1000); n != 100 || err != nil || !bytes.Equal(buf, want[1000:1100]) {
		t.Fatalf("ReadAt(1000) = %d, %v, %q", n, err, buf[:n])
	}
	if n, err := f.ReadAt(buf, int64(len(want)-30)); n != 30 || err != io.EOF || !bytes.Equal(buf[:n], want[len(want)-30:]) {
		t.Fatalf("ReadAt near the end = %d, %v; want 30, EOF", n, err)
	}
	sr := io.NewSectionReader(f, 5, 20)
	if b, err := io.ReadAll(sr); err != nil || string(b) != string(want[5:25]) {
		t.Fatalf("section = %q, %v", b, err)
	}
	fd := f.Fd()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("descriptor %d after Close: fcntl = %v, want EBADF", fd, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
}

func TestFileErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFile(fd, "some/dir")
	defer f.Close()
	_, err = f.Read(make([]byte, 8))
	if !errors.Is(err, unix.EISDIR) || !strings.Contains(err.Error(), "read some/dir") {
		t.Fatalf("Read of a directory = %v; want EISDIR naming some/dir", err)
	}
	_, err = f.ReadAt(make([]byte, 8), 0)
	if !errors.Is(err, unix.EISDIR) || !strings.Contains(err.Error(), "some/dir") {
		t.Fatalf("ReadAt of a directory = %v; want EISDIR naming some/dir", err)
	}
}
