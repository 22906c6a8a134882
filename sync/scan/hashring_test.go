package scan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/internal/uring"
	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// ringOn reports whether the hasher's ring runs on this kernel; where it
// does not, the tests below compare the plain reader with itself and say so.
func ringOn(t *testing.T) bool {
	t.Helper()
	r, err := uring.New(4*ringSlots, ringSlots, ringArena)
	if err != nil {
		t.Logf("no io_uring here (%v): both runs read the ordinary way", err)
		return false
	}
	r.Close()
	return true
}

// scanAll returns the entries of a scan of dir.
func scanAll(t testing.TB, dir string) []*manifest.Entry {
	t.Helper()
	s, err := Start(context.Background(), Config{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := manifest.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// hashTree scans dir, lets mutate change the tree between the scan and the
// hashing, and hashes the scanned entries with the ring on or off. It
// returns the entries, the errors by path as text, and the bytes read.
func hashTree(t *testing.T, dir string, digest string, xattrs []string, ring bool, mutate func()) ([]*manifest.Entry, map[string]string, int64) {
	t.Helper()
	entries := scanAll(t, dir)
	if mutate != nil {
		mutate()
	}
	defer func(was bool) { ringDisabled = was }(ringDisabled)
	ringDisabled = !ring
	before := ringHashed.Load()
	h, err := NewHasherDigest(context.Background(), dir, &manifest.SliceIterator{Entries: entries}, 2, true, digest, xattrs)
	if err != nil {
		t.Fatal(err)
	}
	// A read that blocks (a fifo opened without O_NONBLOCK waits for a
	// writer) must fail the test, not hang it.
	type all struct {
		es  []*manifest.Entry
		err error
	}
	done := make(chan all, 1)
	go func() {
		es, err := manifest.ReadAll(h)
		done <- all{es, err}
	}()
	var got []*manifest.Entry
	select {
	case a := <-done:
		if a.err != nil {
			t.Fatal(a.err)
		}
		got = a.es
	case <-time.After(30 * time.Second):
		t.Fatalf("ring %v: hashing still blocked after 30 s", ring)
	}
	if n := ringHashed.Load() - before; !ring && n != 0 {
		t.Fatalf("ring off, yet %d files hashed from a ring", n)
	} else if ring && ringOn(t) && n < 100 {
		t.Fatalf("ring on, and only %d files hashed from it", n)
	}
	errs := map[string]string{}
	for _, e := range got {
		if err := h.Err(e.Path); err != nil {
			errs[e.Path] = err.Error()
		}
	}
	return got, errs, h.Bytes()
}

// The ring gives every entry the hash, the xattrs and the error that the
// ordinary reader gives: for runs of files longer than one submission (by
// count and by bytes), files on both sides of the ring's size limit, empty
// files, and files that grew, shrank, vanished or became a symlink, a
// directory or a fifo after the scan (a fifo must not block the read:
// nothing writes to it); with xxhash64 and with rsync's MD4.
func TestHasherRingMatchesPlain(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	content := func(n, seed int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*31 + seed)
		}
		return b
	}
	for i := range 150 {
		write(fmt.Sprintf("many/m%03d", i), content(i*37%5000, i)) // 150 files, 370 KB
	}
	for i, n := range []int{0, 1, ringMaxFile - 2, ringMaxFile - 1, ringMaxFile, ringMaxFile + 1, 200000} {
		write(fmt.Sprintf("sizes/s%d", i), content(n, i))
	}
	for _, n := range []string{"grown", "shrunk", "gone", "link", "dir", "fifo", "same"} {
		write("chg/"+n, content(100, len(n)))
	}
	if err := unix.Setxattr(filepath.Join(dir, "many/m007"), "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(dir, "sizes/s6"), "user.big", []byte("w"), 0); err != nil {
		t.Fatal(err)
	}
	mutate := func() {
		write("chg/grown", content(101, 5))
		write("chg/shrunk", content(99, 6))
		for _, n := range []string{"gone", "link", "dir", "fifo"} {
			if err := os.Remove(filepath.Join(dir, "chg", n)); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Mkfifo(filepath.Join(dir, "chg/fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("same", filepath.Join(dir, "chg/link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "chg/dir"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	reset := func() {
		for _, n := range []string{"link", "dir", "fifo"} {
			if err := os.RemoveAll(filepath.Join(dir, "chg", n)); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range []string{"grown", "shrunk", "gone", "link", "dir", "fifo"} {
			write("chg/"+n, content(100, len(n)))
		}
	}
	for _, c := range []struct {
		digest string
		xattrs []string
	}{{DigestXXH64, nil}, {DigestMD4, nil}, {DigestXXH64, []string{"user."}}} {
		reset()
		plain, plainErrs, plainBytes := hashTree(t, dir, c.digest, c.xattrs, false, mutate)
		reset()
		ring, ringErrs, ringBytes := hashTree(t, dir, c.digest, c.xattrs, true, mutate)
		if len(plain) != len(ring) {
			t.Fatalf("%q: %d entries plain, %d by ring", c.digest, len(plain), len(ring))
		}
		for i, p := range plain {
			r := ring[i]
			if p.Path != r.Path || p.HasHash != r.HasHash || p.Hash != r.Hash || !slices.EqualFunc(p.Xattrs, r.Xattrs, func(a, b manifest.Xattr) bool { return a.Name == b.Name && string(a.Value) == string(b.Value) }) {
				t.Errorf("%q %v: %s: plain %v %x %v, ring %s %v %x %v", c.digest, c.xattrs, p.Path, p.HasHash, p.Hash, p.Xattrs, r.Path, r.HasHash, r.Hash, r.Xattrs)
			}
		}
		if !maps(plainErrs, ringErrs) || len(ringErrs) != 6 {
			t.Errorf("%q: errors plain %v, ring %v; want 6 each", c.digest, plainErrs, ringErrs)
		}
		if plainBytes != ringBytes {
			t.Errorf("%q: %d bytes plain, %d by ring", c.digest, plainBytes, ringBytes)
		}
		// And the plain reader is right: what is on disk.
		for _, e := range plain {
			if c.digest == DigestXXH64 && e.HasHash {
				data, err := os.ReadFile(filepath.Join(dir, e.Path))
				if err != nil || xxhash.Sum64(data) != e.Hash {
					t.Errorf("%s: hash %x, file %v", e.Path, e.Hash, err)
				}
			}
		}
		if c.xattrs != nil {
			for _, e := range ring {
				if (e.Path == "many/m007" || e.Path == "sizes/s6") != (len(e.Xattrs) == 1) {
					t.Errorf("%s: xattrs %v", e.Path, e.Xattrs)
				}
			}
		}
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A file queued on the ring is opened in its own directory even when a
// large file of another directory, read the ordinary way, comes between:
// dirs closes the first directory's descriptor then, and the next
// directory it opens takes the same number, where a file of the same name
// and size lives.
func TestHasherRingKeepsDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []struct {
		name string
		data string
	}{
		{"d1/x", "first directory"},
		{"d2/a", string(make([]byte, ringMaxFile+10))},
		{"d2/x", "other directory"},
		{"d3/x", "third directory"},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ringOn(t)
	entries := scanAll(t, dir)
	h, err := NewHasher(context.Background(), dir, &manifest.SliceIterator{Entries: entries}, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := manifest.ReadAll(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if e.Type != manifest.TypeFile {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil || !e.HasHash || e.Hash != xxhash.Sum64(data) {
			t.Errorf("%s: hash %v %x, want the hash of its own content (%v)", e.Path, e.HasHash, e.Hash, err)
		}
	}
}

// BenchmarkHasherSmallFiles hashes 2,000 files of 4 KiB in 20 directories
// (a Maildir's shape) with the ring and the ordinary reader.
func BenchmarkHasherSmallFiles(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 4096)
	for i := range 2000 {
		p := filepath.Join(dir, fmt.Sprintf("d%02d/m%04d", i%20, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		data[0] = byte(i)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	entries := scanAll(b, dir)
	for _, ring := range []bool{true, false} {
		b.Run(fmt.Sprintf("ring=%v", ring), func(b *testing.B) {
			defer func(was bool) { ringDisabled = was }(ringDisabled)
			ringDisabled = !ring
			b.SetBytes(2000 * 4096)
			for b.Loop() {
				h, err := NewHasher(context.Background(), dir, &manifest.SliceIterator{Entries: entries}, 2, true)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := manifest.ReadAll(h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
