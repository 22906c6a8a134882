package engine

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/internal/fsx"
	"golang.org/x/sys/unix"
)

// directFS reports whether dir's file system takes O_DIRECT writes, by
// copying one block with fsx.CopyDirect: the test says which path it took.
func directFS(t *testing.T, dir string) bool {
	t.Helper()
	fd, err := unix.Open(filepath.Join(dir, "probe"), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := fsx.AlignedBuf(fsx.DirectAlign)
	_, refused, err := fsx.CopyDirect(context.Background(), fd, bytes.NewReader(buf), nil, buf)
	return err == nil && !refused
}

// A pass copies files from fsx.DirectMin up with O_DIRECT and the others, or
// all with NoDirectIO, through the page cache; either way the copies and
// their manifest hashes are right.
func TestDirectCopies(t *testing.T) {
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := map[string]int{"small": 100, "edge": fsx.DirectMin, "big": 2*fsx.DirectMin + 777, "aligned": 4 * fsx.DirectMin}
	for name, size := range sizes {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(src, name), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for _, noDirect := range []bool{false, true} {
		dst, st := filepath.Join(t.TempDir(), "dst"), t.TempDir()
		res := mustRun(t, Options{Kind: Initial, Src: src, Dst: dst, StateDir: st, NoDirectIO: noDirect})
		if res.Stats.Created != int64(len(sizes))+1 {
			t.Errorf("NoDirectIO %v: %d created, want %d files and the root", noDirect, res.Stats.Created, len(sizes))
		}
		// What went around the page cache is not in it: all of "big" but
		// its last partial page, when the file system takes O_DIRECT.
		// (Checked first: reading the copies below caches them.)
		cached := residentPages(t, filepath.Join(dst, "big"))
		total := (sizes["big"] + os.Getpagesize() - 1) / os.Getpagesize()
		switch {
		case noDirect && cached < total/2:
			t.Errorf("NoDirectIO: %d of big's %d pages in the page cache, want (nearly) all", cached, total)
		case !noDirect && directFS(t, filepath.Dir(dst)) && cached > 1:
			t.Errorf("O_DIRECT: %d of big's %d pages in the page cache, want at most its last", cached, total)
		case !noDirect:
			t.Logf("O_DIRECT on %s: %v; %d of %d pages cached", dst, directFS(t, filepath.Dir(dst)), cached, total)
		}
		hashes := map[string]uint64{}
		for _, e := range readManifest(t, filepath.Join(st, "dst.manifest")) {
			hashes[e.Path] = e.Hash
		}
		for name := range sizes {
			want, _ := os.ReadFile(filepath.Join(src, name))
			got, err := os.ReadFile(filepath.Join(dst, name))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("NoDirectIO %v: %s: %d bytes (%v), want the %d of the source", noDirect, name, len(got), err, len(want))
			}
			fi, err := os.Stat(filepath.Join(dst, name))
			if err != nil || fi.Mode().Perm() != 0o640 {
				t.Errorf("NoDirectIO %v: %s: mode %v (%v), want 0640", noDirect, name, fi.Mode(), err)
			}
			if hashes[name] != xxhash.Sum64(want) {
				t.Errorf("NoDirectIO %v: %s: destination manifest hash %x, want %x", noDirect, name, hashes[name], xxhash.Sum64(want))
			}
		}
	}
}

// residentPages counts the pages of the file at p that are in the page cache.
func residentPages(t *testing.T, p string) int {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}
