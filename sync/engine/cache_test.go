package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/msync/msync/record"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/manifest"
)

// A catch-up of a local source takes the hashes of unchanged files from the
// last source manifest (the scanner's cache, which shares one decoding of
// that manifest with the merge), hashes what it copies, and still deletes
// what the source removed: the new source manifest has a correct hash for
// every file.
func TestCatchupCarriesHashesForward(t *testing.T) {
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	writeFiles(t, src, 300, 7)
	run := func(kind Kind) *record.Result {
		return mustRun(t, Options{Kind: kind, Src: src, Dst: dst, StateDir: st})
	}
	check := func(stage string, wantFiles int) {
		t.Helper()
		files := 0
		for _, e := range readManifest(t, filepath.Join(st, "src.manifest")) {
			if e.Type != manifest.TypeFile {
				continue
			}
			files++
			data, err := os.ReadFile(filepath.Join(src, e.Path))
			if err != nil {
				t.Fatalf("%s: %s in the manifest: %v", stage, e.Path, err)
			}
			if !e.HasHash || e.Hash != xxhash.Sum64(data) {
				t.Fatalf("%s: %s: hash %x (recorded %v), want %x", stage, e.Path, e.Hash, e.HasHash, xxhash.Sum64(data))
			}
		}
		if files != wantFiles {
			t.Fatalf("%s: %d files in the manifest, want %d", stage, files, wantFiles)
		}
	}
	run(Initial)
	check("initial", 300)
	run(Catchup)
	check("idle catch-up", 300)
	os.WriteFile(filepath.Join(src, "d0/f000"), []byte("changed, and longer"), 0o644)
	os.Remove(filepath.Join(src, "d1/f001"))
	os.RemoveAll(filepath.Join(src, "d6"))
	if res := run(Catchup); res.Stats.Deleted != 2 || res.Stats.Updated != 1 {
		t.Fatalf("catch-up: %d deleted (want d1/f001 and the tree d6), %d updated (want 1)", res.Stats.Deleted, res.Stats.Updated)
	}
	check("catch-up", 300-1-42)
}

// The local scanner of a catch-up takes the xattrs of an object whose
// identity (size, mtime, ctime, inode) is unchanged from the last source
// manifest instead of reading them again (changing an xattr changes the
// ctime). Seen by planting one in that manifest: it must come through.
func TestCatchupScannerUsesTheLastManifest(t *testing.T) {
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	for i := range 50 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(kind Kind) { mustRun(t, Options{Kind: kind, Src: src, Dst: dst, StateDir: st, Xattrs: true}) }
	run(Initial)
	path := filepath.Join(st, "src.manifest")
	rewrite := func(fn func(e *manifest.Entry)) []*manifest.Entry {
		t.Helper()
		es := readManifest(t, path)
		if fn == nil {
			return es
		}
		for _, e := range es {
			fn(e)
		}
		writeManifest(t, path, es)
		return es
	}
	planted := manifest.Xattr{Name: "user.planted", Value: []byte("from the manifest")}
	rewrite(func(e *manifest.Entry) {
		if e.Path == "f07" {
			e.Xattrs = []manifest.Xattr{planted}
		}
	})
	run(Catchup)
	for _, e := range rewrite(nil) {
		if e.Path == "f07" {
			if len(e.Xattrs) != 1 || e.Xattrs[0].Name != planted.Name {
				t.Fatalf("f07's xattrs after the catch-up: %+v; the scanner read them again instead of taking them from the last manifest", e.Xattrs)
			}
			return
		}
	}
	t.Fatal("f07 is missing from the new source manifest")
}
