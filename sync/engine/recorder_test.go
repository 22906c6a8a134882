package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/state"
)

// openBound opens a state directory bound to a pair, with a pass begun.
func openBound(t *testing.T, dir string) *state.Dir {
	t.Helper()
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := state.LocalEnd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Bind(state.Pair{Src: src, Dst: state.RemoteEnd("host:/srv/dst")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Begin(); err != nil {
		t.Fatal(err)
	}
	return st
}

func testEntries() []*manifest.Entry {
	return []*manifest.Entry{
		{Path: "", Type: manifest.TypeDir, Mode: 0o755, Mtime: 1},
		{Path: "a", Type: manifest.TypeFile, Mode: 0o644, Size: 3, Mtime: 2},
		{Path: "d", Type: manifest.TypeDir, Mode: 0o755, Mtime: 3},
		{Path: "d/f", Type: manifest.TypeFile, Mode: 0o600, Size: 9, Mtime: 4},
		{Path: "d/l", Type: manifest.TypeSymlink, Mode: 0o777, Size: 1, LinkTarget: "f", Mtime: 5},
	}
}

// A pass with no destination scan records its entries as both manifests,
// commits them, clears the running mark and appends its record; the
// committed manifests read back entry for entry.
func TestRecorderCommitsAndRecords(t *testing.T) {
	dir := t.TempDir()
	st := openBound(t, dir)
	rec, err := OpenRecorder(st)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Abort()
	want := testEntries()
	for _, e := range want {
		if err := rec.Add(e, e); err != nil {
			t.Fatal(err)
		}
	}
	res := &record.Result{Stats: record.Stats{Created: 4, Entries: 5}, NotQuiet: []string{"a (changed)"}}
	if err := rec.Record(res, PassInfo{}); err == nil {
		t.Fatal("Record before Commit: no error")
	}
	if err := rec.Commit(res); err != nil {
		t.Fatal(err)
	}
	if !res.Committed {
		t.Error("Committed not set")
	}
	start := time.Now().Add(-time.Second)
	if err := rec.Record(res, PassInfo{Kind: Catchup, Final: true, Start: start, Src: "/src", Dst: "host:/srv/dst"}); err != nil {
		t.Fatal(err)
	}
	rec.Abort() // after Commit: nothing happens
	for _, side := range []state.Side{state.Source, state.Dest} {
		got := readManifest(t, st.ManifestPath(side))
		if len(got) != len(want) {
			t.Fatalf("%s manifest: %d entries, want %d", side, len(got), len(want))
		}
		for i := range want {
			if !manifest.Equal(got[i], want[i]) {
				t.Errorf("%s manifest entry %d: %+v, want %+v", side, i, got[i], want[i])
			}
		}
	}
	if _, err := os.Stat(st.PendingPath()); !os.IsNotExist(err) {
		t.Errorf("pending source manifest left after commit: %v", err)
	}
	if st.Interrupted() {
		t.Error("the pass is still marked running after a commit without failures")
	}
	ps, err := state.Passes(dir)
	if err != nil || len(ps) != 1 {
		t.Fatalf("passes: %v, %v", ps, err)
	}
	p := ps[0]
	if p.Kind != "final" || p.Src != "/src" || p.Dst != "host:/srv/dst" || !p.OK || p.Quiet == nil || *p.Quiet ||
		p.Stats.Created != 4 || p.Duration < time.Second {
		t.Errorf("pass record: %+v", p)
	}
}

// A pass that failed a file commits its manifests but stays marked as
// running; an aborted one commits nothing and leaves its pending source
// manifest for the next pass to take.
func TestRecorderFailedAndAborted(t *testing.T) {
	dir := t.TempDir()
	st := openBound(t, dir)
	rec, err := OpenRecorder(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range testEntries() {
		if err := rec.Add(e, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Commit(&record.Result{Stats: record.Stats{Failed: 1}}); err != nil {
		t.Fatal(err)
	}
	if !st.Interrupted() {
		t.Error("a pass with a failure is no longer marked running")
	}
	if got := readManifest(t, st.ManifestPath(state.Dest)); len(got) != 0 {
		t.Errorf("destination manifest: %d entries, want none", len(got))
	}

	rec, err = OpenRecorder(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Add(testEntries()[0], nil); err != nil {
		t.Fatal(err)
	}
	rec.Abort()
	if got := readManifest(t, st.ManifestPath(state.Source)); len(got) != len(testEntries()) {
		t.Errorf("committed source manifest changed by an aborted pass: %d entries", len(got))
	}
	if _, err := os.Stat(st.PendingPath()); err != nil {
		t.Errorf("aborted pass left no pending source manifest: %v", err)
	}
	names, err := st.TakeInterrupted()
	if err != nil || len(names) != 1 {
		t.Fatalf("TakeInterrupted: %v, %v", names, err)
	}
}

// Entries out of manifest order are refused.
func TestRecorderRefusesDisorder(t *testing.T) {
	st := openBound(t, t.TempDir())
	rec, err := OpenRecorder(st)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Abort()
	es := testEntries()
	if err := rec.Add(es[2], es[2]); err != nil {
		t.Fatal(err)
	}
	if err := rec.Add(es[1], es[1]); err == nil {
		t.Fatal("an entry before the last one added: no error")
	}
	if err := rec.Commit(&record.Result{}); err == nil {
		t.Fatal("commit after a write error: no error")
	}
	for _, side := range []state.Side{state.Source, state.Dest} {
		if _, err := os.Stat(st.ManifestPath(side)); !os.IsNotExist(err) {
			t.Errorf("%s manifest committed after a write error: %v", side, err)
		}
	}
}

// A pass that leaves a manifest as committed (nothing changed on that
// side) removes that manifest's pending file too: whatever the kind of
// pass, the state directory holds no temp file after it.
func TestKeptManifestLeavesNoTemp(t *testing.T) {
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	writeFiles(t, src, 20, 2)
	mustRun(t, Options{Kind: Initial, Src: src, Dst: dst, StateDir: st})
	for _, o := range []Options{
		{Kind: Catchup},
		{Kind: Catchup, TrustDest: true},
		{Kind: Catchup, Final: true},
		{Kind: Initial},
	} {
		o.Src, o.Dst, o.StateDir = src, dst, st
		mustRun(t, o)
		names, err := os.ReadDir(st)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.HasPrefix(n.Name(), ".") || strings.HasSuffix(n.Name(), ".pending") {
				t.Errorf("%s (trust-dest %v, final %v) left %s in the state directory", o.Kind, o.TrustDest, o.Final, n.Name())
			}
		}
	}
}
