package bench

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// CopyFloor copies every directory, regular file and symlink with its
// content, mode and mtime, counts what it did, and skips special files.
func TestCopyFloorCopiesTheTree(t *testing.T) {
	src := t.TempDir()
	big := make([]byte, 700<<10) // more than one read buffer
	for i := range big {
		big[i] = byte(i * 7)
	}
	huge := make([]byte, 2<<20+5) // written with O_DIRECT, as msync does
	for i := range huge {
		huge[i] = byte(i * 13)
	}
	files := map[string][]byte{
		"huge":            huge,
		"empty":           nil,
		"x/y/z/deep":      []byte("deep"),
		"big":             big,
		"x/.hidden":       []byte("h"),
		"x/y/mode0600":    []byte("private"),
		"many/0":          []byte("0"),
		"x/y/z/w/v/u/low": []byte("low"),
	}
	for i := range 500 {
		files["many/"+strconv.Itoa(i)+strings.Repeat("n", i%50)] = []byte(strconv.Itoa(i))
	}
	var want CopyStats
	var hashes uint64 // what Record sums
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want.Files++
		want.Bytes += int64(len(data))
		hashes += xxhash.Sum64(data)
	}
	os.Chmod(filepath.Join(src, "x/y/mode0600"), 0o600)
	os.Chmod(filepath.Join(src, "x/y"), 0o750)
	if err := os.Link(filepath.Join(src, "big"), filepath.Join(src, "x/biglink")); err != nil {
		t.Fatal(err)
	}
	want.Files++
	want.Bytes += int64(len(big))
	hashes += xxhash.Sum64(big)
	if err := os.Symlink("nowhere", filepath.Join(src, "x/dangling")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	want.Skipped = 1
	old := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if p != src {
			want.Entries++
		}
		// Deepest first is not needed: Lchtimes of a child leaves the
		// parent's mtime alone.
		if err := os.Lchown(p, os.Getuid(), os.Getgid()); err != nil {
			t.Fatal(err)
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return os.Chtimes(p, old, old.Add(time.Duration(len(p))*time.Second))
		}
		return nil
	})

	for _, workers := range []int{1, 3} {
		for _, temp := range []bool{false, true} {
			record := temp == (workers == 1) // each with and without
			dst := filepath.Join(t.TempDir(), "copy")
			got, err := CopyFloor(context.Background(), workers, src, dst, CopyOptions{Sync: workers == 3, Temp: temp, Record: record})
			if err != nil {
				t.Fatal(err)
			}
			if got.Copy <= 0 || (workers == 3) != (got.Sync > 0) {
				t.Errorf("times: copy %v, sync %v", got.Copy, got.Sync)
			}
			got.Copy, got.Sync = 0, 0
			w := want
			if temp {
				w.Renamed = w.Files // every file went through a temp name
			}
			if record {
				w.Recorded, w.Hashes = w.Files, hashes
			}
			if got != w {
				t.Errorf("%d workers, temp %v, record %v: %+v, want %+v", workers, temp, record, got, w)
			}
			// No temp name is left behind: sameTrees reports any entry the
			// source lacks.
			if n := sameTrees(t, src, dst); int64(n) != want.Entries+1-want.Skipped {
				t.Errorf("compared %d entries", n)
			}
		}
	}
}

// A name too long to take the temp name's dot and suffix gets a temp name
// cut short, not ENAMETOOLONG.
func TestCopyFloorTempLongName(t *testing.T) {
	src := t.TempDir()
	long := strings.Repeat("n", 255)
	if err := os.WriteFile(filepath.Join(src, long), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := len(tempName(long)); n != 255 {
		t.Errorf("temp name of a 255-byte name has %d bytes", n)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	got, err := CopyFloor(context.Background(), 1, src, dst, CopyOptions{Temp: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Renamed != 1 {
		t.Errorf("renamed %d files, want 1", got.Renamed)
	}
	if b, err := os.ReadFile(filepath.Join(dst, long)); err != nil || string(b) != "x" {
		t.Errorf("copy: %q, %v", b, err)
	}
}

// sameTrees reports every entry of src (but special files) that dst lacks
// or has with another type, mode, mtime, content or link target, and
// every entry dst has beyond them. It returns how many it compared.
func sameTrees(t *testing.T, src, dst string) int {
	t.Helper()
	n := 0
	seen := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		a, _ := os.Lstat(p)
		b, err := os.Lstat(q)
		if d.Type()&fs.ModeNamedPipe != 0 {
			if err == nil {
				t.Errorf("%s: a fifo was copied", rel)
			}
			return nil
		}
		n++
		seen[rel] = true
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: %v %v, want %v %v", rel, b.Mode(), b.ModTime(), a.Mode(), a.ModTime())
		}
		switch {
		case a.Mode().IsRegular():
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(q)
			if !bytes.Equal(x, y) {
				t.Errorf("%s: content differs", rel)
			}
		case a.Mode()&fs.ModeSymlink != 0:
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(q)
			if x != y {
				t.Errorf("%s: link to %q, want %q", rel, y, x)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dst, p); err == nil && !seen[rel] {
			t.Errorf("%s: not in the source", rel)
		}
		return nil
	})
	return n
}

// A missing source, a destination that exists and a cancelled context
// stop the copy with an error that says so.
func TestCopyFloorErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := CopyFloor(context.Background(), 2, missing, filepath.Join(dir, "d1"), CopyOptions{}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing source: err = %v, want one naming %s", err, missing)
	}
	if _, err := CopyFloor(context.Background(), 2, dir, dir, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "file exists") {
		t.Errorf("existing destination: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CopyFloor(ctx, 2, dir, filepath.Join(dir, "d2"), CopyOptions{}); err != context.Canceled {
		t.Errorf("cancelled: err = %v", err)
	}
}
