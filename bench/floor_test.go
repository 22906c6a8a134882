package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/manifest"
)

// Floor lstats every entry below its roots once, reads every regular file
// to the end with read set, and follows no symlink.
func TestFloorCountsEveryEntry(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	big := make([]byte, 700<<10) // more than one read buffer
	for i := range big {
		big[i] = byte(i)
	}
	files := map[string][]byte{
		"a/empty":                       nil,
		"a/x/y/z/deep":                  []byte("deep"),
		"a/big":                         big,
		"a/.hidden":                     []byte("h"),
		"a/..dots":                      []byte("dots"),
		"a/" + strings.Repeat("n", 200): []byte("long name"),
		"b/one":                         []byte("1"),
	}
	for name, data := range files {
		root := a
		if strings.HasPrefix(name, "b/") {
			root = b
		}
		p := filepath.Join(root, name[2:])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Many names: getdents needs several calls for this directory, and
	// the ring several submissions.
	for i := range 3000 {
		if err := os.WriteFile(filepath.Join(b, "many-"+strings.Repeat("m", i%40)+string(rune('a'+i%26))+strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(a, filepath.Join(b, "loop")); err != nil { // never followed
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(a, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(a, "fifo"), 0o644); err != nil { // never opened
		t.Fatal(err)
	}
	var want FloorStats
	var wantBytes int64
	var wantSum uint64
	for _, root := range []string{a, b} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if p == root {
				return nil
			}
			want.Entries++
			if d.Type().IsRegular() {
				want.Files++
				fi, _ := d.Info()
				wantBytes += fi.Size()
				if fi.Size() > 0 {
					data, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					wantSum ^= xxhash.Sum64(data)
				}
			}
			return nil
		})
	}
	defer func(was bool) { floorRingDisabled = was }(floorRingDisabled)
	for _, c := range []struct {
		workers int
		ring    bool
	}{{1, true}, {3, true}, {1, false}, {3, false}} {
		workers := c.workers
		floorRingDisabled = !c.ring
		for _, m := range []struct {
			name       string
			read, hash bool
			bytes      int64
			sum        uint64
		}{
			{"walk", false, false, 0, 0},
			{"read", true, false, wantBytes, 0},
			{"read and hash", true, true, wantBytes, wantSum},
		} {
			want.Bytes, want.Sum = m.bytes, m.sum
			got, err := Floor(context.Background(), workers, m.read, m.hash, a, b)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s with %d workers, ring %v: %+v, want %+v", m.name, workers, c.ring, got, want)
			}
		}
	}
}

// A root that is missing or not a directory stops the probe with an error
// that names it, and so does a cancelled context.
func TestFloorErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := Floor(context.Background(), 2, false, false, dir, missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing root: err = %v, want one naming %s", err, missing)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Floor(context.Background(), 2, false, false, file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file root: err = %v, want not a directory", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Floor(ctx, 2, false, false, dir); err != context.Canceled {
		t.Errorf("cancelled: err = %v", err)
	}
}

// The table shows each row's floor and floor/rsync beside the ratio.
func TestMarkdownShowsFloor(t *testing.T) {
	s := &series{m: []float64{0.5, 0.7}, r: []float64{1.0, 1.0}, floor: []float64{0.2, 0.3}, duty: []float64{0.4, 0.3}}
	row := s.row("no-change pass", "s", 0.3, "")
	if row.Floor == nil || row.FloorRatio != 0.25 || row.Ratio != 0.6 || row.Duty == nil || row.DutyRatio != 0.35 {
		t.Fatalf("row = %+v, floor %+v, duty %+v", row, row.Floor, row.Duty)
	}
	plain := (&series{m: []float64{1}, r: []float64{2}}).row("verify", "s", 0.5, "")
	var b strings.Builder
	(&Result{Rows: []Row{row, plain}}).Markdown(&b)
	for _, want := range []string{
		"| 0.60 | <= 0.3 (not met) | 0.25 s (0.20-0.30) (0.25) | 0.35 s (0.30-0.40) (0.35) |",
		"| verify | 1.00 s | 2.00 s | 0.50 | <= 0.5 (met) |  |  |  |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the table:\n%s", want, b.String())
		}
	}
}

// DecodeManifests reads every manifest it is given to the end, compressed
// or not, and names the file that is missing or damaged.
func TestDecodeManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int, state bool) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		newW := manifest.NewWriter
		if state {
			newW = manifest.NewStateWriter
		}
		w, err := newW(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(&manifest.Entry{Path: "", Type: manifest.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < n; i++ {
			e := &manifest.Entry{Path: fmt.Sprintf("f%05d", i), Type: manifest.TypeFile, Mode: 0o644, Size: int64(i), HasHash: true, Hash: uint64(i)}
			if err := w.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.manifest", 9000, false) // more than one check of ctx
	b := write("b.manifest", 5, true)
	n, err := DecodeManifests(context.Background(), a, b)
	if err != nil || n != 9005 {
		t.Fatalf("decoded %d entries, %v; want 9005", n, err)
	}
	if n, err := DecodeManifests(context.Background()); err != nil || n != 0 {
		t.Errorf("no manifests: %d, %v", n, err)
	}

	missing := filepath.Join(dir, "missing")
	if _, err := DecodeManifests(context.Background(), b, missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing manifest: err = %v, want one naming %s", err, missing)
	}
	data, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.manifest")
	if err := os.WriteFile(cut, data[:len(data)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeManifests(context.Background(), cut); err == nil || !strings.Contains(err.Error(), cut) || errors.Is(err, io.EOF) {
		t.Errorf("truncated manifest: err = %v, want one naming %s", err, cut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := DecodeManifests(ctx, a); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}
