package engine

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/msync/msync/record"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/tree"
)

func TestDeleteGroups(t *testing.T) {
	paths := []string{"a/1", "a/2", "a/d", "a/d/x", "a/d/x/deep", "a/d/y", "a/e", "b/1", "b/2", "b/z", "b/z/1", "c", "d/exim/ID-D", "d/exim/ID-H"}
	got := deleteGroups(slices.Clone(paths))
	want := [][]string{
		{"a/e", "a/d/y", "a/d/x/deep", "a/d/x", "a/d", "a/2", "a/1"},
		{"b/z/1", "b/z", "b/2", "b/1"},
		{"c"},
		{"d/exim/ID-H", "d/exim/ID-D"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("deleteGroups:\n got %q\nwant %q", got, want)
	}
	// Whatever the input, each path lands once, groups keep reverse path
	// order, and a deleted directory's contents share its group.
	group := map[string]int{}
	for i, g := range deleteGroups(paths) {
		if !slices.IsSortedFunc(g, func(a, b string) int { return manifest.Compare(b, a) }) {
			t.Errorf("group %q is not in reverse path order", g)
		}
		for _, p := range g {
			if _, dup := group[p]; dup {
				t.Errorf("%s in two groups", p)
			}
			group[p] = i
		}
	}
	for _, p := range paths {
		for _, q := range paths {
			if manifest.IsAncestor(p, q) && group[p] != group[q] {
				t.Errorf("%s and %s (below it) are in different groups", p, q)
			}
		}
	}
	if len(group) != len(paths) {
		t.Errorf("%d paths grouped, want %d", len(group), len(paths))
	}
}

// A catch-up removes what the source deleted, spread over more directories
// than there are deleters, with whole trees among them, and keeps the rest.
func TestCatchupDeletesInParallel(t *testing.T) {
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for d := range 12 {
		for f := range 20 {
			write(fmt.Sprintf("q%02d/f%02d", d, f))
		}
		write(fmt.Sprintf("q%02d/tree/sub/x", d))
	}
	run := func(kind Kind) *record.Result {
		return mustRun(t, Options{Kind: kind, Src: src, Dst: dst, StateDir: st})
	}
	run(Initial)
	gone := 0
	for d := range 12 {
		for f := 0; f < 20; f += 2 {
			if err := os.Remove(filepath.Join(src, fmt.Sprintf("q%02d/f%02d", d, f))); err != nil {
				t.Fatal(err)
			}
			gone++
		}
		if d%3 == 0 {
			if err := os.RemoveAll(filepath.Join(src, fmt.Sprintf("q%02d/tree", d))); err != nil {
				t.Fatal(err)
			}
			gone++
		}
	}
	if res := run(Catchup); res.Stats.Deleted != int64(gone) {
		t.Errorf("deleted %d paths, want %d", res.Stats.Deleted, gone)
	}
	var want, got []string
	for _, root := range []struct {
		dir  string
		list *[]string
	}{{src, &want}, {dst, &got}} {
		filepath.WalkDir(root.dir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root.dir, p)
			*root.list = append(*root.list, rel)
			return nil
		})
	}
	if !slices.Equal(got, want) {
		t.Errorf("destination after the catch-up:\n%q\nwant\n%q", got, want)
	}
}

// mustRun runs a pass from the local tree o.Src and fails the test unless
// every file got through.
func mustRun(t *testing.T, o Options) *record.Result {
	t.Helper()
	o.Source = &tree.Local{Root: o.Src}
	res, err := Run(context.Background(), o)
	if err != nil || res.Stats.Failed != 0 {
		t.Fatalf("%v: %v %+v", o.Kind, err, res)
	}
	return res
}

// writeFiles writes n small files spread over dirs directories of root:
// dI/fNNN holds "content NNN".
func writeFiles(t *testing.T, root string, n, dirs int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("d%d/f%03d", i%dirs, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprint("content ", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readManifest returns every entry of the manifest file at path.
func readManifest(t *testing.T, path string) []*manifest.Entry {
	t.Helper()
	r, err := manifest.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	es, err := manifest.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return es
}

// writeManifest replaces the manifest file at path with es.
func writeManifest(t *testing.T, path string, es []*manifest.Entry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := manifest.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
