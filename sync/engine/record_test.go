package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/state"
	"golang.org/x/sys/unix"
)

// The destination manifest records each file as it is on disk after the
// pass: inode, ctime (set by the link or rename that put it in place), link
// count, size, mode and mtime, for new files (linked in from O_TMPFILE) and
// replaced ones (renamed over the old copy), small and large.
func TestDestManifestMatchesDisk(t *testing.T) {
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	writeFiles(t, src, 60, 3)
	big := bytes.Repeat([]byte("0123456789abcdef"), fsx.DirectMin/8+99)
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		n := 0
		for _, e := range readManifest(t, filepath.Join(st, "dst.manifest")) {
			if e.Type != manifest.TypeFile {
				continue
			}
			n++
			var s unix.Stat_t
			if err := unix.Lstat(filepath.Join(dst, e.Path), &s); err != nil {
				t.Fatal(err)
			}
			disk := scan.FromStat(e.Path, &s)
			if e.Inode != disk.Inode || e.Ctime != disk.Ctime || e.Nlink != disk.Nlink || e.Size != disk.Size ||
				e.Mode != disk.Mode || e.Mtime != disk.Mtime || e.UID != disk.UID || e.GID != disk.GID {
				t.Errorf("%s: %s recorded as\n%+v\non disk\n%+v", when, e.Path, e, disk)
			}
		}
		if n != 61 {
			t.Fatalf("%s: %d files in the manifest, want 61", when, n)
		}
	}
	mustRun(t, Options{Kind: Initial, Src: src, Dst: dst, StateDir: st})
	check("initial")

	// Replace some files (renamed over their old copies) and add others.
	for _, p := range []string{"d0/f000", "d1/f001", "big"} {
		if err := os.WriteFile(filepath.Join(src, p), []byte("new content of "+p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(src, "d2/f002")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "d2/new"), []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, Options{Kind: Catchup, Src: src, Dst: dst, StateDir: st})
	if res.Stats.Updated != 3 || res.Stats.Created != 1 {
		t.Fatalf("catch-up: %d updated, %d created; want 3 and 1", res.Stats.Updated, res.Stats.Created)
	}
	check("catch-up")
}

// The pass record's Diff phase is the time the merge spent on the paths,
// part of the scan phase: there and not more than it, in an initial copy
// and a catch-up.
func TestDiffPhaseIsRecorded(t *testing.T) {
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	writeFiles(t, src, 80, 3)
	mustRun(t, Options{Kind: Initial, Src: src, Dst: dst, StateDir: st})
	mustRun(t, Options{Kind: Catchup, Src: src, Dst: dst, StateDir: st})
	ps, err := state.Passes(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("%d passes recorded, want 2", len(ps))
	}
	for _, p := range ps {
		if p.Phases.Diff <= 0 || p.Phases.Diff > p.Phases.Scan {
			t.Errorf("%s pass: Diff phase %v, Scan phase %v", p.Kind, p.Phases.Diff, p.Phases.Scan)
		}
	}
}

// A pass records how its time divides, for the estimate: the workers' time
// on files (Work) and the part moving bytes (Copy), the merge's time not
// waiting for the workers (Merge), and the deletions' time (Unlink). Slow
// workers make the merge wait: that wait is in Scan and not in Merge.
func TestCostSplitIsRecorded(t *testing.T) {
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	const files = 300
	writeFiles(t, src, files, 3)
	const slow = 3 * time.Millisecond
	TestHooks.AfterVisible = func(op, path string) {
		if op == "rename" {
			time.Sleep(slow)
		}
	}
	t.Cleanup(func() { TestHooks.AfterVisible = nil })
	mustRun(t, Options{Kind: Initial, Src: src, Dst: dst, StateDir: st})
	TestHooks.AfterVisible = nil
	mustRun(t, Options{Kind: Catchup, Src: src, Dst: dst, StateDir: st})
	if err := os.RemoveAll(filepath.Join(src, "d1")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, Options{Kind: Catchup, Src: src, Dst: dst, StateDir: st})
	ps, err := state.Passes(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("%d passes recorded, want 3", len(ps))
	}
	in, cu, del := ps[0].Phases, ps[1].Phases, ps[2].Phases
	t.Logf("initial: scan %v, merge %v, work %v, copy %v", in.Scan, in.Merge, in.Work, in.Copy)
	// The sleep after each rename is the workers' time, not moving bytes.
	if in.Work < files*slow || in.Copy <= 0 || in.Work-in.Copy < files*slow {
		t.Errorf("initial: work %v, copy %v; want work at least %v, of which copy at most work - %v", in.Work, in.Copy, files*slow, files*slow)
	}
	if in.Merge <= 0 || in.Merge > in.Scan/2 {
		t.Errorf("initial: merge %v of scan %v: the waits for the slow workers should be out of it", in.Merge, in.Scan)
	}
	if cu.Work != 0 || cu.Copy != 0 || cu.Unlink != 0 || cu.Merge <= 0 {
		t.Errorf("catch-up that changed nothing: work %v, copy %v, unlink %v, merge %v", cu.Work, cu.Copy, cu.Unlink, cu.Merge)
	}
	if ps[2].Stats.Deleted == 0 || del.Unlink <= 0 || del.Unlink > del.Delete {
		t.Errorf("catch-up that deleted %d: unlink %v of the end's %v", ps[2].Stats.Deleted, del.Unlink, del.Delete)
	}
}
