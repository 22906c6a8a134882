package engine

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/msync/msync/record"

	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// A catch-up that changes nothing keeps the committed manifest files (the
// destination's whether it was scanned or trusted); one that changes
// something, wherever in the order, writes manifests that list exactly each
// tree, and the passes after them act on them correctly.
func TestIdlePassesKeepTheirManifests(t *testing.T) {
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	writeFiles(t, src, 200, 5)
	if err := os.Link(filepath.Join(src, "d0/f000"), filepath.Join(src, "d4/zz-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../d0/f000", filepath.Join(src, "d3/sym")); err != nil {
		t.Fatal(err)
	}
	srcM, dstM := filepath.Join(st, "src.manifest"), filepath.Join(st, "dst.manifest")
	ino := func(p string) uint64 {
		t.Helper()
		var s unix.Stat_t
		if err := unix.Stat(p, &s); err != nil {
			t.Fatal(err)
		}
		return s.Ino
	}
	run := func(trust bool) *record.Result {
		t.Helper()
		res := mustRun(t, Options{Kind: Catchup, Src: src, Dst: dst, StateDir: st, TrustDest: trust})
		if _, err := os.Stat(srcM + ".pending"); !os.IsNotExist(err) {
			t.Fatalf("a pending manifest is left after the pass: %v", err)
		}
		return res
	}
	// listed checks that manifest path lists exactly the tree root.
	listed := func(stage, path, root string) {
		t.Helper()
		var got, want []string
		for _, e := range readManifest(t, path) {
			got = append(got, e.Path)
		}
		filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(root, p)
			if rel == "." {
				rel = ""
			}
			want = append(want, rel)
			return err
		})
		slices.SortFunc(want, manifest.Compare)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %s lists %d paths, the tree has %d:\n%q\n%q", stage, filepath.Base(path), len(got), len(want), got, want)
		}
	}
	mustRun(t, Options{Kind: Initial, Src: src, Dst: dst, StateDir: st})
	s0 := ino(srcM)
	run(false)
	if ino(srcM) != s0 {
		t.Error("an idle catch-up rewrote the source manifest")
	}
	d0 := ino(dstM)
	for _, trust := range []bool{false, true} {
		run(trust)
		if ino(srcM) != s0 || ino(dstM) != d0 {
			t.Errorf("an idle catch-up (trusting the destination: %v) rewrote a manifest", trust)
		}
	}

	// One change per pass, first, in the middle, last, and of each kind,
	// each with the destination scanned and trusted: the manifests are
	// rewritten from there and list the trees exactly.
	changes := []struct {
		name string
		do   func() error
	}{
		{"first entry's mode", func() error { return os.Chmod(src, 0o750) }},
		{"middle file deleted", func() error { return os.Remove(filepath.Join(src, "d2/f102")) }},
		{"middle file appended", func() error {
			return os.WriteFile(filepath.Join(src, "d2/f107"), []byte("content 107 and more"), 0o644)
		}},
		{"file added", func() error { return os.WriteFile(filepath.Join(src, "d1/new"), []byte("new"), 0o644) }},
		{"last entry deleted", func() error { return os.Remove(filepath.Join(src, "d4/zz-link")) }},
		{"directory deleted", func() error { return os.RemoveAll(filepath.Join(src, "d3")) }},
		{"destination file deleted", func() error { return os.Remove(filepath.Join(dst, "d1/f006")) }},
		{"destination file added", func() error { return os.WriteFile(filepath.Join(dst, "d0/extra"), nil, 0o644) }},
		{"destination file added last", func() error { return os.WriteFile(filepath.Join(dst, "d4/zzz"), nil, 0o644) }},
		{"destination's last file deleted", func() error { return os.Remove(filepath.Join(dst, "d4/zzz")) }},
	}
	for i, c := range changes {
		// A trusted destination manifest would not see a change made there.
		trust := i%2 == 1 && !strings.HasPrefix(c.name, "destination")
		if err := c.do(); err != nil {
			t.Fatal(err)
		}
		run(trust)
		if ino(dstM) == d0 {
			t.Fatalf("%s: the destination manifest was kept", c.name)
		}
		listed(c.name, srcM, src)
		listed(c.name, dstM, dst)
		// The idle passes after it keep what they wrote (the first may
		// still rewrite a scanned destination's: linking a file changes
		// its ctime after the lstat the manifest records).
		run(trust)
		s0, d0 = ino(srcM), ino(dstM)
		run(trust)
		if ino(srcM) != s0 || ino(dstM) != d0 {
			t.Fatalf("%s: an idle pass rewrote a manifest", c.name)
		}
		listed(c.name+", idle", dstM, dst)
	}
	// The destination followed every change (but for what msync did not
	// put there).
	if err := os.Remove(filepath.Join(dst, "d0/extra")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, Options{Kind: Catchup, Src: src, Dst: dst, StateDir: st})
	listed("final scan", dstM, dst)
	listed("final scan", dstM, src)

	// An entry of the last source manifest that neither tree has (its
	// parent unchanged) is dropped: the only difference of the pass.
	es := readManifest(t, srcM)
	ghost := *es[len(es)-1]
	ghost.Path = filepath.Dir(ghost.Path) + "/zzz-ghost"
	writeManifest(t, srcM, append(es, &ghost))
	run(true)
	listed("ghost entry", srcM, src)
}
