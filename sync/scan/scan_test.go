package scan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

func TestScanOrderTypesAndHashCache(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range 30 {
		for _, sub := range []string{"a", "a.b", "a/b", "z z", "a-"} {
			p := filepath.Join(dir, sub, fmt.Sprintf("d%d", i%3))
			must(os.MkdirAll(p, 0o755))
			must(os.WriteFile(filepath.Join(p, fmt.Sprintf("f%d", i)), []byte(sub), 0o644))
		}
	}
	must(os.Symlink("../nowhere", filepath.Join(dir, "dangling")))
	must(os.WriteFile(filepath.Join(dir, "a", ".msync.tag.0123.tmp"), nil, 0o600))
	// A user's name that looks like a temp name is an ordinary name.
	must(os.WriteFile(filepath.Join(dir, "a", ".msync.0123.tmp"), nil, 0o600))
	must(os.WriteFile(filepath.Join(dir, "x.bak"), nil, 0o600))
	must(filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			rel = ""
		}
		if filepath.Base(p) != ".msync.tag.0123.tmp" && filepath.Base(p) != "x.bak" {
			want = append(want, filepath.ToSlash(rel))
		}
		return err
	}))
	slices.SortFunc(want, manifest.Compare)

	ex, _ := filter.New([]string{"*.bak"})
	own := func(name string) bool { return strings.HasPrefix(name, ".msync.tag.") }
	s, err := Start(context.Background(), Config{Root: dir, Exclude: ex, Workers: 3, OwnTemp: own})
	must(err)
	entries, err := manifest.ReadAll(s)
	must(err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Path)
		if e.Path == "dangling" && (e.Type != manifest.TypeSymlink || e.LinkTarget != "../nowhere") {
			t.Errorf("symlink entry %+v", e)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scan order\n got %q\nwant %q", got, want)
	}
	if temps := s.Temps(); len(temps) != 1 || temps[0] != "a/.msync.tag.0123.tmp" {
		t.Errorf("temps = %q", temps)
	}

	// Hash everything, then rescan with the hashed list as cache: the
	// hashes come back without reading, except for the file we change.
	h, err := NewHasher(context.Background(), dir, &manifest.SliceIterator{Entries: entries}, 2, false)
	must(err)
	hashed, err := manifest.ReadAll(h)
	must(err)
	must(os.WriteFile(filepath.Join(dir, "a", "d0", "f0"), []byte("changed"), 0o644))
	s2, err := Start(context.Background(), Config{Root: dir, Prev: &manifest.SliceIterator{Entries: hashed}, OwnTemp: own})
	must(err)
	again, err := manifest.ReadAll(s2)
	must(err)
	for _, e := range again {
		if e.Type != manifest.TypeFile {
			continue
		}
		if e.Path == "a/d0/f0" && e.HasHash {
			t.Error("changed file kept its cached hash")
		}
		if e.Path != "a/d0/f0" && e.Path != "x.bak" && !e.HasHash {
			t.Errorf("%s lost its cached hash", e.Path)
		}
	}
}

func BenchmarkScan(b *testing.B) {
	dir := b.TempDir()
	for i := range 50 {
		p := filepath.Join(dir, fmt.Sprint(i))
		os.MkdirAll(p, 0o755)
		for j := range 100 {
			os.WriteFile(filepath.Join(p, fmt.Sprint(j)), nil, 0o644)
		}
	}
	benchScan(b, dir, 5051, "files/op")
}

// benchScan scans dir, which holds n entries, b.N times.
func benchScan(b *testing.B, dir string, n int, unit string) {
	b.ResetTimer()
	for b.Loop() {
		s, err := Start(context.Background(), Config{Root: dir})
		if err != nil {
			b.Fatal(err)
		}
		es, err := manifest.ReadAll(s)
		if err != nil || len(es) != n {
			b.Fatal(len(es), err)
		}
	}
	b.ReportMetric(float64(n), unit)
}

// BenchmarkScanNested scans a tree three directories deep (8x8x8, ten
// files in each of the 512 deepest): the workers must list directories the
// walk has not reached to keep both cores busy.
func BenchmarkScanNested(b *testing.B) {
	dir := b.TempDir()
	for i := range 8 {
		for j := range 8 {
			for k := range 8 {
				p := filepath.Join(dir, fmt.Sprint(i), fmt.Sprint(j), fmt.Sprint(k))
				os.MkdirAll(p, 0o755)
				for f := range 10 {
					os.WriteFile(filepath.Join(p, fmt.Sprint(f)), nil, 0o644)
				}
			}
		}
	}
	benchScan(b, dir, 1+8+64+512+5120, "entries/op")
}

func TestXattrsReusedOnlyForUnchangedIdentity(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"same", "changed"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(filepath.Join(dir, n), "user.v", []byte("1"), 0); err != nil {
			t.Fatalf("setxattr (needs a file system with user xattrs): %v", err)
		}
	}
	ns := []string{"user."}
	s, _ := Start(context.Background(), Config{Root: dir, Xattrs: ns})
	first, err := manifest.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	// Poison the cache: a value that is not on disk. An unchanged file must
	// come back with it (proof no system call was made), a changed one not.
	for _, e := range first {
		e.Xattrs = []manifest.Xattr{{Name: "user.v", Value: []byte("cached")}}
	}
	if err := unix.Setxattr(filepath.Join(dir, "changed"), "user.v", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	s2, _ := Start(context.Background(), Config{Root: dir, Xattrs: ns, Prev: &manifest.SliceIterator{Entries: first}})
	again, err := manifest.ReadAll(s2)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range again {
		if len(e.Xattrs) == 1 {
			got[e.Path] = string(e.Xattrs[0].Value)
		}
	}
	if got["same"] != "cached" || got["changed"] != "2" {
		t.Fatalf("xattrs after rescan: %q", got)
	}
}

// TestListsOnlyBoundedAhead: with nothing reading the scan, the workers stop
// once maxAhead entries wait (a directory at a time may overshoot it):
// memory stays bounded whatever the tree's size. Every entry still arrives
// once the scan is read.
// aheadWhenStill waits until s stops listing (nothing reads it) and
// returns the entries listed ahead of its walk.
func aheadWhenStill(s *Scanner) int {
	ahead, stable := -1, 0
	for stable < 5 {
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
		a := s.ahead
		s.mu.Unlock()
		if a == ahead {
			stable++
		} else {
			ahead, stable = a, 0
		}
	}
	return ahead
}

func TestListsOnlyBoundedAhead(t *testing.T) {
	dir := t.TempDir()
	const dirs, files = 80, 100 // 8,000 files, about 4x maxAhead
	if dirs*files < 3*maxAhead {
		t.Fatalf("the tree (%d files) must be well over maxAhead (%d) to test it", dirs*files, maxAhead)
	}
	for d := range dirs {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range files {
			if err := os.WriteFile(filepath.Join(p, fmt.Sprintf("f%03d", f)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	const workers = 2
	s, err := Start(context.Background(), Config{Root: dir, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ahead := aheadWhenStill(s)
	if limit := maxAhead + workers*(files+1); ahead > limit {
		t.Errorf("%d entries listed ahead of the walk, want at most %d", ahead, limit)
	}
	if ahead == 0 {
		t.Error("nothing listed ahead: the workers did not run ahead of the walk")
	}
	entries, err := manifest.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + dirs*(files+1); len(entries) != want {
		t.Fatalf("got %d entries, want %d", len(entries), want)
	}
}

// The workers list subdirectories the walk has not reached yet: a
// directory's subdirectories are queued when it is listed, not when the
// walk gets to it. Here nothing reads the scan, so the walk stops inside a
// (3,000 files, more than the output holds); b was listed beside a, and
// its ten subdirectories must be listed too, long before the walk comes.
func TestWorkersListAheadOfTheWalk(t *testing.T) {
	dir := t.TempDir()
	write := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const inA, subs, inSub = 3000, 10, 20
	for i := range inA {
		write(filepath.Join(dir, "a", fmt.Sprintf("f%04d", i)))
	}
	for c := range subs {
		for i := range inSub {
			write(filepath.Join(dir, "b", fmt.Sprintf("c%d", c), fmt.Sprintf("f%02d", i)))
		}
	}
	if inA < 2*outBatches*256 || subs*(inSub+1) > maxAhead/2 {
		t.Fatal("the tree no longer stops the walk in a with room ahead for b")
	}
	s, err := Start(context.Background(), Config{Root: dir, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ahead := aheadWhenStill(s)
	// b and its children (1+subs), and each subdirectory with its files.
	if want := 1 + subs + subs*(inSub+1); ahead != want {
		t.Errorf("%d entries listed ahead of the walk, want %d (b and its %d subdirectories)", ahead, want, subs)
	}
	entries, err := manifest.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + 1 + inA + 1 + subs*(inSub+1); len(entries) != want {
		t.Fatalf("got %d entries, want %d", len(entries), want)
	}
}
