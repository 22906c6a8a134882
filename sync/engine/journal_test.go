package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/state"
)

// killedPassJournaled leaves a state directory as a pass killed right after
// it put dst/gone (a file) and dst/dir (a directory) in place would: their
// intents in the journal, nothing in any manifest.
func killedPassJournaled(t *testing.T, st string) {
	t.Helper()
	d, err := state.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	j := d.NewJournal(false)
	j.Add("dir", manifest.TypeDir)
	if err := j.Ensure(j.Add("gone", manifest.TypeFile)); err != nil {
		t.Fatal(err)
	}
	j.Close()
}

// What a killed pass journaled and the source no longer has is deleted by
// the next pass, initial or catch-up; rsync's daemon semantics
// (DeleteOnlyAsked) keep it unless --delete.
func TestJournaledNamesAreMsyncs(t *testing.T) {
	for _, tc := range []struct {
		kind     Kind
		onlyAsk  bool
		wantGone bool
	}{{Catchup, false, true}, {Initial, false, true}, {Initial, true, false}} {
		base := t.TempDir()
		src, dst, st := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "state")
		for _, p := range []string{src, dst + "/dir"} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(src+"/kept", []byte("k"), 0o644)
		os.WriteFile(dst+"/gone", []byte("g"), 0o644)
		os.WriteFile(dst+"/admin", []byte("a"), 0o644)
		killedPassJournaled(t, st)
		res, err := Run(context.Background(), Options{Kind: tc.kind, Src: src, Dst: dst, StateDir: st, DeleteOnlyAsked: tc.onlyAsk})
		if err != nil || !res.Committed {
			t.Fatalf("%s: %v %+v", tc.kind, err, res)
		}
		for _, p := range []string{"gone", "dir"} {
			_, err := os.Lstat(filepath.Join(dst, p))
			if gone := os.IsNotExist(err); gone != tc.wantGone {
				t.Errorf("%s (only asked: %v): %s gone = %v, want %v", tc.kind, tc.onlyAsk, p, gone, tc.wantGone)
			}
		}
		if _, err := os.Lstat(dst + "/admin"); err != nil {
			t.Errorf("%s: a name msync never put there was deleted: %v", tc.kind, err)
		}
		if left, _ := filepath.Glob(st + "/journal*"); len(left) != 0 {
			t.Errorf("%s: journals left after a committed pass: %q", tc.kind, left)
		}
	}
}
