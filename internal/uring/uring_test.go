package uring

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// newRing returns a ring, or ends the test with why there is none: where
// the kernel refuses io_uring, the callers fall back to plain reads, which
// their own tests cover; this test then checks that the refusal is the
// documented error.
func newRing(t *testing.T, entries uint32, slots, arena int) *Ring {
	t.Helper()
	r, err := New(entries, slots, arena)
	if err != nil {
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("New: %v, which does not wrap ErrUnsupported", err)
		}
		t.Logf("no ring on this kernel (%v): only the refusal was checked", err)
		return nil
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A chain opens, reads and closes each file; a missing file, a symlink
// (O_NOFOLLOW) and a directory fail where they should, and what follows a
// failed open is cancelled; many chains complete in one Wait, and the ring
// can be used again.
func TestReadChain(t *testing.T) {
	r := newRing(t, 256, 64, 64*8000)
	if r == nil {
		return
	}
	dir := t.TempDir()
	const n = 60
	want := make([][]byte, n)
	for i := range n {
		want[i] = bytes.Repeat([]byte{byte(i)}, i*100)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("f", i)), want[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f1", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)

	for round := range 2 {
		names := append(make([]string, 0, n+3), "missing", "link", ".")
		for i := range n {
			names = append(names, fmt.Sprint("f", i))
		}
		bufs := make([][]byte, len(names))
		var res []Result
		for i, name := range names {
			if r.Free() < 3 {
				t.Fatalf("round %d: no room after %d chains", round, i)
			}
			var ok bool
			bufs[i], ok = r.ReadChain(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW, 8000)
			if !ok || len(bufs[i]) != 8000 {
				t.Fatalf("round %d: chain %d refused (%v) or buffer of %d bytes", round, i, ok, len(bufs[i]))
			}
			if i == 0 {
				// Finish the first chain alone, then queue the rest.
				first, err := r.Wait()
				if err != nil {
					t.Fatal(err)
				}
				res = append(res, first...)
				bufs[0] = bytes.Clone(bufs[0]) // the next ReadChain reuses the ring's memory
			}
		}
		rest, err := r.Wait()
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, rest...)
		if len(res) != len(names) {
			t.Fatalf("round %d: %d results, want %d", round, len(res), len(names))
		}
		for i, name := range names {
			got := [3]int32{res[i].Open, res[i].Read, res[i].Close}
			switch name {
			case "missing", "link", ".":
				wantErr := map[string]unix.Errno{"missing": unix.ENOENT, "link": unix.ELOOP}[name]
				if name == "." {
					// A directory opens, and reading it fails.
					if got[0] < 0 || got[1] != -int32(unix.EISDIR) || got[2] != 0 {
						t.Errorf("%s: results %v, want open ok, EISDIR, close ok", name, got)
					}
					continue
				}
				if got[0] != -int32(wantErr) || got[1] != -int32(unix.ECANCELED) || got[2] != -int32(unix.ECANCELED) {
					t.Errorf("%s: results %v, want %d then cancelled", name, got, -int32(wantErr))
				}
			default:
				k := i - 3
				if got[0] < 0 || got[1] != int32(len(want[k])) || got[2] != 0 || !bytes.Equal(bufs[i][:got[1]], want[k]) {
					t.Errorf("%s: results %v, content equal %v", name, got, bytes.Equal(bufs[i][:max(got[1], 0)], want[k]))
				}
			}
		}
	}
	if r.Free() != 256 {
		t.Errorf("Free after Wait = %d, want 256", r.Free())
	}
}

// ReadChain refuses, queueing nothing, what does not fit in one Wait (the
// arena, the requests) and names the kernel would not take; after a Wait
// the ring takes as much again.
func TestReadChainRefuses(t *testing.T) {
	r := newRing(t, 8, 4, 100)
	if r == nil {
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	for _, c := range []struct {
		name string
		size int
	}{
		{"f", 101},
		{"f", -1},
		{string(bytes.Repeat([]byte{'n'}, unix.NAME_MAX+1)), 1},
		{"f\x00g", 1},
	} {
		if _, ok := r.ReadChain(dfd, c.name, unix.O_RDONLY, c.size); ok || r.Free() != 8 {
			t.Errorf("name of %d bytes, size %d: queued (%v), %d free", len(c.name), c.size, ok, r.Free())
		}
	}
	a, ok1 := r.ReadChain(dfd, "f", unix.O_RDONLY, 60)
	b, ok2 := r.ReadChain(dfd, "f", unix.O_RDONLY, 40)
	if !ok1 || !ok2 || r.Free() != 2 {
		t.Fatalf("two chains: %v %v, %d free", ok1, ok2, r.Free())
	}
	if _, ok := r.ReadChain(dfd, "f", unix.O_RDONLY, 0); ok {
		t.Errorf("a third chain fit in 2 free requests")
	}
	reads, err := r.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) != 2 || reads[0].Read != 3 || reads[1].Read != 3 || string(a[:3]) != "abc" || string(b[:3]) != "abc" {
		t.Errorf("results %v, buffers %q %q", reads, a[:3], b[:3])
	}
	if _, ok := r.ReadChain(dfd, "f", unix.O_RDONLY, 100); !ok {
		t.Errorf("the whole arena refused after Wait")
	}
	if _, err := r.Wait(); err != nil {
		t.Fatal(err)
	}

	// Slots bound the chains of one Wait: a ring with room for 9 requests
	// but 2 slots takes 2 chains.
	r2 := newRing(t, 16, 2, 100)
	for i := range 3 {
		if _, ok := r2.ReadChain(dfd, "f", unix.O_RDONLY, 10); ok != (i < 2) {
			t.Errorf("chain %d of 2 slots: queued %v", i, ok)
		}
	}
	if res, err := r2.Wait(); err != nil || len(res) != 2 || res[0].Read != 3 || res[1].Read != 3 {
		t.Errorf("2 slots: %v, %v", res, err)
	}
}
