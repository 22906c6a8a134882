package fsx

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// directFS reports whether dir's file system takes O_DIRECT writes: the
// test says which path it went through.
func directFS(t *testing.T, dir string) bool {
	t.Helper()
	fd, err := unix.Open(filepath.Join(dir, "probe"), unix.O_CREAT|unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, AlignedBuf(DirectAlign))
	return err == nil
}

// CopyDirect writes exactly what it reads, whatever the size against the
// buffer and the block size, hashes it, and leaves O_DIRECT off; a buffer
// that breaks O_DIRECT's alignment rules sends the copy through the page
// cache, whole and correct, and says so.
func TestCopyDirect(t *testing.T) {
	dir := t.TempDir()
	t.Logf("O_DIRECT on %s: %v", dir, directFS(t, dir))
	rng := rand.New(rand.NewPCG(1, 2))
	small := AlignedBuf(4 * DirectAlign)
	misaligned := AlignedBuf(5 * DirectAlign)[1 : 1+4*DirectAlign]
	for _, size := range []int{0, 1, DirectAlign - 1, DirectAlign, DirectAlign + 1, 4*DirectAlign - 1, 4 * DirectAlign, 4*DirectAlign + 1, 3*DirectBuf + 12345} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for _, tc := range []struct {
			name string
			buf  []byte
		}{{"small", small}, {"large", AlignedBuf(DirectBuf)}, {"misaligned", misaligned}} {
			p := filepath.Join(dir, "out")
			fd, err := unix.Open(p, unix.O_CREAT|unix.O_TRUNC|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			h := xxhash.New()
			n, refused, err := CopyDirect(context.Background(), fd, bytes.NewReader(data), h, tc.buf)
			if err == ErrNoDirect {
				// Nothing was read: the caller copies through the page cache.
				var k int
				k, err = unix.Write(fd, data)
				n = int64(k)
				h.Write(data)
			}
			if err != nil {
				t.Fatalf("size %d, %s buffer: %v", size, tc.name, err)
			}
			fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			if err != nil || fl&unix.O_DIRECT != 0 {
				t.Errorf("size %d, %s buffer: O_DIRECT left on (flags %#x, %v)", size, tc.name, fl, err)
			}
			unix.Close(fd)
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(size) || !bytes.Equal(got, data) {
				t.Fatalf("size %d, %s buffer: copied %d bytes, file has %d, equal %v", size, tc.name, n, len(got), bytes.Equal(got, data))
			}
			if h.Sum64() != xxhash.Sum64(data) {
				t.Errorf("size %d, %s buffer: hash %x, want %x", size, tc.name, h.Sum64(), xxhash.Sum64(data))
			}
			if tc.name == "misaligned" && size >= DirectAlign && directFS(t, dir) && !refused {
				t.Errorf("size %d: an O_DIRECT write from a misaligned buffer was not refused", size)
			}
		}
	}
}
