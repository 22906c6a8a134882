package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// failAfter ends a stream with an error after n entries.
type failAfter struct {
	it  manifest.Iterator
	n   int
	err error
}

func (f *failAfter) Next() (*manifest.Entry, error) {
	if f.n == 0 {
		return nil, f.err
	}
	f.n--
	return f.it.Next()
}

// The hasher returns every entry in order with the hash of what is on disk,
// across batches cut by count and by size, reports the file that vanished
// and counts the bytes it read; a stream that fails still delivers what
// came before the failure, then the error.
func TestHasherBatches(t *testing.T) {
	dir := t.TempDir()
	content := map[string][]byte{}
	for i := range 300 {
		name := fmt.Sprintf("d%d/f%03d", i/50, i)
		b := []byte(fmt.Sprint("file ", i))
		if i == 130 {
			b = make([]byte, 3<<20) // bigger than a batch's bytes
			for j := range b {
				b[j] = byte(j * 7)
			}
		}
		content[name] = b
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries := scanAll(t, dir)
	const gone = "d4/f201"
	if err := os.Remove(filepath.Join(dir, gone)); err != nil {
		t.Fatal(err)
	}
	h, err := NewHasher(context.Background(), dir, &manifest.SliceIterator{Entries: entries}, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := manifest.ReadAll(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries out, %d in", len(got), len(entries))
	}
	var want int64
	for i, e := range got {
		if e != entries[i] {
			t.Fatalf("entry %d is %s, want %s", i, e.Path, entries[i].Path)
		}
		if e.Type != manifest.TypeFile {
			continue
		}
		if e.Path == gone {
			if e.HasHash || h.Err(gone) == nil {
				t.Errorf("%s vanished: hash %v, error %v", gone, e.HasHash, h.Err(gone))
			}
			continue
		}
		want += int64(len(content[e.Path]))
		if !e.HasHash || e.Hash != xxhash.Sum64(content[e.Path]) || h.Err(e.Path) != nil {
			t.Errorf("%s: hash %v %x, error %v", e.Path, e.HasHash, e.Hash, h.Err(e.Path))
		}
	}
	if h.Bytes() != want {
		t.Errorf("read %d bytes, want %d", h.Bytes(), want)
	}

	boom := errors.New("boom")
	h, err = NewHasher(context.Background(), dir, &failAfter{it: &manifest.SliceIterator{Entries: entries}, n: 100, err: boom}, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 101 {
		e, err := h.Next()
		switch {
		case i < 100 && (err != nil || e != entries[i]):
			t.Fatalf("entry %d: %v, %v", i, e, err)
		case i == 100 && !errors.Is(err, boom):
			t.Fatalf("after 100 entries: %v, %v; want the stream's error", e, err)
		}
	}
	if _, err := h.Next(); err == io.EOF {
		t.Errorf("EOF after the error")
	}
	h.Close()
}

// HashFile hashes what the scan saw, and reports a file that grew or
// shrank since the scan as changed while it was read, for small files
// (read in one call) and for files longer than its buffer.
func TestHashFileSeesSizeChanges(t *testing.T) {
	dir := t.TempDir()
	dirs := openDirs(t, dir)
	buf := make([]byte, 4096)
	for _, size := range []int{0, 10, 4095, 4096, 4097, 3 * 4096, 100000} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*13 + size)
		}
		name := fmt.Sprint("f", size)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		e := FromStat(name, &st)
		sum, n, err := HashFile(context.Background(), dirs, e, buf)
		if err != nil || n != int64(size) || sum != xxhash.Sum64(data) {
			t.Fatalf("size %d: got %x, %d bytes, %v; want %x", size, sum, n, err, xxhash.Sum64(data))
		}
		// Grown by one byte since the scan.
		if err := os.WriteFile(p, append(data, 'x'), 0o644); err != nil {
			t.Fatal(err)
		}
		var ch *ErrChanged
		if _, _, err := HashFile(context.Background(), dirs, e, buf); !errors.As(err, &ch) || ch.Path != name {
			t.Errorf("size %d, grown: got %v, want ErrChanged", size, err)
		}
		if size == 0 {
			continue
		}
		// Shorter by one byte.
		if err := os.WriteFile(p, data[:size-1], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := HashFile(context.Background(), dirs, e, buf); !errors.As(err, &ch) {
			t.Errorf("size %d, shrunk: got %v, want ErrChanged", size, err)
		}
	}
}

// The hasher asks for O_NOATIME only where the kernel grants it: on files
// the process owns, or as root. A file of another owner is opened once,
// without the flag, instead of being refused with EPERM and opened again.
func TestHashOpensWithNoatimeOnlyWhereGranted(t *testing.T) {
	for _, c := range []struct {
		euid int
		uid  uint32
		want bool
	}{{0, 0, true}, {0, 1000, true}, {1000, 1000, true}, {1000, 0, false}, {1000, 1001, false}} {
		if got := mayNoatime(c.euid, c.uid); got != c.want {
			t.Errorf("mayNoatime(euid %d, uid %d) = %v, want %v", c.euid, c.uid, got, c.want)
		}
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirs := openDirs(t, dir)
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "f"), &st); err != nil {
		t.Fatal(err)
	}
	e := FromStat("f", &st)

	var flags []int
	defer func(o func(int, string, int, uint32) (int, error), u int) { openat, euid = o, u }(openat, euid)
	openat = func(dfd int, name string, fl int, mode uint32) (int, error) {
		if fl&unix.O_PATH == 0 {
			flags = append(flags, fl)
		}
		return unix.Openat(dfd, name, fl, mode)
	}
	for _, c := range []struct {
		euid    int
		noatime bool
	}{{int(st.Uid) + 1, false}, {int(st.Uid), true}} {
		flags = nil
		euid = c.euid
		h, n, err := HashFile(context.Background(), dirs, e, make([]byte, 4096))
		if err != nil || n != 4 || h != xxhash.Sum64String("data") {
			t.Fatalf("euid %d: HashFile = %x, %d, %v", euid, h, n, err)
		}
		if len(flags) != 1 || (flags[0]&unix.O_NOATIME != 0) != c.noatime {
			t.Errorf("euid %d, file of uid %d: opens with flags %#x, want one open with O_NOATIME %v", euid, st.Uid, flags, c.noatime)
		}
	}
}

// openDirs opens dir as a root for the length of the test.
func openDirs(t *testing.T, dir string) *fsx.Dirs {
	t.Helper()
	root, err := fsx.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	dirs := root.NewDirs()
	t.Cleanup(func() {
		dirs.Close()
		root.Close()
	})
	return dirs
}

// A name that is not a regular file (a device node, a fifo), asked for by
// a peer's fetch request or put in a scanned file's place, is never opened:
// only looked at through O_PATH. Opening a device node alone has effects
// (a tape rewinds); the test uses a fifo and counts, through the openat
// seam, the opens that are not O_PATH and got something not regular.
func TestOpenFileNeverOpensNonRegular(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirs := openDirs(t, dir)
	var opened []string
	defer func(o func(int, string, int, uint32) (int, error)) { openat = o }(openat)
	openat = func(dfd int, name string, fl int, mode uint32) (int, error) {
		fd, err := unix.Openat(dfd, name, fl, mode)
		var st unix.Stat_t
		if err == nil && fl&unix.O_PATH == 0 && unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			opened = append(opened, name)
		}
		return fd, err
	}
	for _, open := range []func() (*fsx.File, error){
		func() (*fsx.File, error) { return OpenFile(dirs, "fifo") },
		func() (*fsx.File, error) { return OpenOwned(dirs, "fifo", 0) },
	} {
		f, err := open()
		if err == nil {
			f.Close()
			t.Errorf("a fifo was opened for reading as a file")
		} else if !errors.Is(err, ErrNotRegular) {
			t.Errorf("open of a fifo: %v, want %v", err, ErrNotRegular)
		}
	}
	if len(opened) > 0 {
		t.Errorf("non-regular files opened: %q", opened)
	}
	f, err := OpenFile(dirs, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || string(b) != "data" {
		t.Fatalf("regular file read as %q, %v", b, err)
	}
}
