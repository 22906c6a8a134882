package bench

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tree of a bench run is generated again whenever the scale (or seed)
// changes, including back to a scale generated before: an older marker
// must not vouch for the tree another scale left.
func TestSourceTreeFollowsTheScale(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	count := func(scale float64) int64 {
		t.Helper()
		c := &Config{Dir: dir, Seed: 1, Scale: scale, Log: &log}
		src, err := c.sourceTree()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		filepath.WalkDir(src, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return err
		})
		return n
	}
	small := count(0.002)
	large := count(0.006)
	if large <= small {
		t.Fatalf("scale 0.006 gave %d bytes, scale 0.002 %d", large, small)
	}
	if again := count(0.002); again != small {
		t.Fatalf("back at scale 0.002: %d bytes, want %d (the tree of scale 0.006 was reused)", again, small)
	}
	count(0.002)
	if n := strings.Count(log.String(), "generating"); n != 3 {
		t.Fatalf("generated %d times, want 3 (once per change of scale):\n%s", n, log.String())
	}
	// A marker of the old kind (named after a seed and scale) left beside a
	// tree of another scale vouches for nothing.
	if err := os.WriteFile(filepath.Join(dir, "src.seed1.scale0.006"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := count(0.006); got != large {
		t.Fatalf("with an old marker for scale 0.006 beside the 0.002 tree: %d bytes, want %d", got, large)
	}
}

// A run keeps its copies until it ends, so it removes what a killed run
// left, and refuses to start when the copies would not fit.
func TestPrepareCopies(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	c := &Config{Dir: dir, Log: &log}
	left := filepath.Join(dir, "copies", "run1.m", "f")
	if err := os.MkdirAll(filepath.Dir(left), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(left, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.prepareCopies(3, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(left); !os.IsNotExist(err) {
		t.Fatalf("copy left by an earlier run still there: %v", err)
	}
	if !strings.Contains(log.String(), "left by an earlier run") {
		t.Fatalf("log does not say the leftovers were removed: %q", log.String())
	}
	if got := c.copyDir("run2.r"); got != filepath.Join(dir, "copies", "run2.r") {
		t.Fatalf("copyDir = %s", got)
	}
	err := c.prepareCopies(1000, 1<<50)
	if err == nil || !strings.Contains(err.Error(), "needs about") || !strings.Contains(err.Error(), c.copies()) {
		t.Fatalf("prepareCopies with no room: %v, want an error naming the need and %s", err, c.copies())
	}
}

// A row's reference command is printed under it, named, with msync's time
// over the reference's.
func TestMarkdownReferenceRow(t *testing.T) {
	s := &series{m: []float64{1, 1.2}, r: []float64{2, 2}, ref: []float64{4, 3}, crs: []int64{2048, 1024}}
	row := s.row("no-change pass", "s", 0.3, "")
	row.RefName = "rsync -aHX --delete"
	var b strings.Builder
	(&Result{Rows: []Row{row}}).Markdown(&b)
	want := "| (reference: rsync -aHX --delete) | | 3.50 s (3.00-4.00) | 0.31 (msync / this) | | | | 2 MiB |"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("Markdown has no line\n%s\nin\n%s", want, b.String())
	}
	if row.Ratio != 1.1/2 {
		t.Fatalf("ratio %v, want msync/rsync %v", row.Ratio, 1.1/2)
	}
}

// When msync's row command does less than the reference (verify without
// xattrs), the reference line shows msync's own time at the reference's
// work, and the ratio is of those two.
func TestMarkdownMsyncReference(t *testing.T) {
	s := &series{m: []float64{1, 1}, r: []float64{2, 2}, ref: []float64{4, 4}, crs: []int64{1024, 1024},
		mref: []float64{3, 2}, mrrss: []int64{3072, 3072}}
	row := s.row("verify", "s", 0.5, "")
	row.RefName = "msync verify vs rsync -aHXn -c --delete"
	var b strings.Builder
	(&Result{Rows: []Row{row}}).Markdown(&b)
	want := "| (reference: msync verify vs rsync -aHXn -c --delete) | 2.50 s (2.00-3.00) | 4.00 s (4.00-4.00) | 0.62 (msync / this) | | | | 3 / 1 MiB |"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("Markdown has no line\n%s\nin\n%s", want, b.String())
	}
	if row.Ratio != 0.5 {
		t.Fatalf("ratio %v, want the row's own msync/rsync 0.5", row.Ratio)
	}
}

// Removing a large tree makes the run wait out ext4's window of recently
// freed inodes before it times anything; removing a small one does not.
func TestWaitAfterLargeDeletion(t *testing.T) {
	oldBig, oldWindow := bigDeletion, deletionWindow
	// The counts are far apart: free inodes are counted over the whole file
	// system, where other tests create and remove files at the same time.
	bigDeletion, deletionWindow = 1000, 300*time.Millisecond
	t.Cleanup(func() { bigDeletion, deletionWindow = oldBig, oldWindow })
	dir := t.TempDir()
	var log strings.Builder
	c := &Config{Dir: dir, Log: &log}
	tree := func(n int) string {
		d := filepath.Join(dir, fmt.Sprint("tree", n))
		for i := range n {
			if err := os.MkdirAll(filepath.Join(d, fmt.Sprint(i%7)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, fmt.Sprint(i%7), fmt.Sprint(i)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	if err := c.removeTree(tree(10)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.waitAfterDeletion()
	if !c.deletedAt.IsZero() || time.Since(start) > 200*time.Millisecond || log.Len() > 0 {
		t.Fatalf("after removing 10 files: deletedAt %v, waited %v, log %q", c.deletedAt, time.Since(start), log.String())
	}
	big := tree(3000)
	if err := c.removeTree(big); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(big); !os.IsNotExist(err) || c.deletedAt.IsZero() {
		t.Fatalf("after removing 3000 files: %v, deletedAt %v", err, c.deletedAt)
	}
	c.waitAfterDeletion()
	if waited := time.Since(c.deletedAt); waited < deletionWindow {
		t.Fatalf("timing could start %v after the deletion, want %v", waited, deletionWindow)
	}
	if !strings.Contains(log.String(), "after deleting a large tree") {
		t.Fatalf("the wait is not logged: %q", log.String())
	}
}

// Mutate rounds go on from one run to the next on a kept source tree (a
// round applied twice can leave a changed file with its old size and
// mtime); a tree without a count, or near maxRounds, is generated again.
func TestMutateRoundsGoOn(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	run := func() (*Config, string) {
		t.Helper()
		c := &Config{Dir: dir, Seed: 1, Scale: 0.002, Runs: 1, Log: &log}
		src, err := c.sourceTree()
		if err != nil {
			t.Fatal(err)
		}
		return c, src
	}
	rounds := func(c *Config) int {
		t.Helper()
		n, ok := c.rounds()
		if !ok {
			t.Fatal("no round count")
		}
		return n
	}
	c, src := run()
	if n := rounds(c); n != 0 {
		t.Fatalf("a new tree has had %d rounds", n)
	}
	for range 2 {
		if err := c.mutate(src); err != nil {
			t.Fatal(err)
		}
	}
	c, src = run() // the next run
	if err := c.mutate(src); err != nil {
		t.Fatal(err)
	}
	if n := rounds(c); n != 3 {
		t.Fatalf("after 2 rounds and 1 in the next run: %d rounds, want 3", n)
	}
	// The third round's directory rename is there: round 3 was applied.
	if m, _ := filepath.Glob(filepath.Join(src, "home", "*", "public_html.r3")); len(m) == 0 {
		t.Error("no public_html.r3: round 3 was not applied")
	}
	if n := strings.Count(log.String(), "generating"); n != 1 {
		t.Fatalf("generated %d times, want 1:\n%s", n, log.String())
	}
	// Near the limit, and without a count, the tree is generated again.
	os.WriteFile(c.roundsFile(), []byte(fmt.Sprintln(maxRounds-1)), 0o644)
	if c, _ = run(); rounds(c) != 0 {
		t.Fatal("near maxRounds: not generated again")
	}
	os.Remove(c.roundsFile())
	if c, _ = run(); rounds(c) != 0 {
		t.Fatal("without a count: not generated again")
	}
	if n := strings.Count(log.String(), "generating"); n != 3 {
		t.Fatalf("generated %d times, want 3:\n%s", n, log.String())
	}
}
