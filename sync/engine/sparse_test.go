package engine

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Content written through the sparse writer in odd-sized pieces reads back
// exactly, and its zero blocks take no space.
func TestSparseWriter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for _, run := range []struct {
		zero bool
		n    int
	}{{false, 100}, {true, 3 << 20}, {false, 5000}, {true, 1 << 20}, {false, 1}, {true, 2 << 20}} {
		b := make([]byte, run.n)
		if !run.zero {
			for i := range b {
				b[i] = byte(r.IntN(255) + 1)
			}
		}
		want = append(want, b...)
	}
	p := filepath.Join(t.TempDir(), "f")
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f := &tmpFile{fd: fd}
	sw := &sparseWriter{f: f}
	for rest := want; len(rest) > 0; {
		k := min(len(rest), 1+r.IntN(300000))
		if _, err := sw.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := sw.Finish(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, want) {
		t.Fatal("content differs after a sparse write")
	}
	var st unix.Stat_t
	unix.Stat(p, &st)
	if used := st.Blocks * 512; used > 1<<20 {
		t.Errorf("%d bytes allocated for %d bytes with 6 MiB of zeros", used, len(want))
	}
}
