package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// localRuns are the local rows of a bench run: each round times msync and
// rsync (alternating which goes first) on the initial copy, the no-change
// passes, a catch-up after one mutate round and verify, each beside its
// floors and reference tools, into one series per row.
type localRuns struct {
	c                                        *Config
	src                                      string
	m2, r2, ms2                              string // copies that measure what a remote catch-up sends
	init, nochange, trusted, catchup, verify *series
	mBytes, rBytes                           []float64
}

func newLocalRuns(c *Config, src string) *localRuns {
	return &localRuns{c: c, src: src, m2: c.copyDir("m2"), r2: c.copyDir("r2"), ms2: c.copyDir("m2.state"),
		init: &series{}, nochange: &series{}, trusted: &series{}, catchup: &series{}, verify: &series{}}
}

// roundDirs are the copies of one round: msync's and its state, rsync's,
// the cp -a reference and the second copy for the catch-up's duty floor.
type roundDirs struct{ run, m, r, ref, ref2, ms string }

// timed runs name and args, and adds the sample to secs and rss.
func (l *localRuns) timed(ctx context.Context, secs *[]float64, rss *[]int64, t trees, name string, args []string) func() error {
	return func() error {
		x, err := l.c.timedRun(ctx, t, name, args...)
		if err != nil {
			return err
		}
		*secs, *rss = append(*secs, x.secs), append(*rss, x.rss)
		return nil
	}
}

// alternate runs msync's command first in even runs, the other first
// in odd ones.
func alternate(i int, m, other func() error) error {
	if i%2 == 1 {
		m, other = other, m
	}
	if err := m(); err != nil {
		return err
	}
	return other()
}

// both times msync (mArgs on trees mt) and rsync (rArgs on rt) into s.
func (l *localRuns) both(ctx context.Context, i int, s *series, mt trees, mArgs []string, rt trees, rArgs []string) error {
	return alternate(i, l.timed(ctx, &s.m, &s.mrss, mt, l.c.Msync, mArgs), l.timed(ctx, &s.r, &s.rrss, rt, l.c.Rsync, rArgs))
}

// round is run i: the initial copy, the no-change passes, one mutate
// round and the catch-up, then verify.
func (l *localRuns) round(ctx context.Context, i int) error {
	c, src := l.c, l.src
	run := fmt.Sprintf("run%d.", i+1)
	d := roundDirs{run: run, m: c.copyDir(run + "m"), r: c.copyDir(run + "r"), ref: c.copyDir(run + "ref"), ms: c.copyDir(run + "m.state")}
	// The source in the page cache for whichever copy goes first.
	if !c.DropCaches {
		if err := c.quiet(ctx, c.Msync, "bench", "floor", "--read", src); err != nil {
			return err
		}
	}
	// A second copy of the tree before the round, for the catch-up's
	// floor with msync's duties (each floor updates its copy). It is
	// made first, untimed, because the first copy of a bench run paid
	// more: in each of 5 bench runs before this, the first copy
	// (msync's) took 1.2-1.9 times its second, and rsync's copy in the
	// same first run was slower than its second too. The likeliest
	// cause: this VM hands memory it frees back to its host (free page
	// reporting), and filling gigabytes of page cache after that
	// faults the pages back in one by one.
	d.ref2 = c.copyDir(run + "ref2")
	if err := c.quiet(ctx, "cp", "-a", src, d.ref2); err != nil {
		return err
	}
	for _, step := range []func(context.Context, int, roundDirs) error{l.initial, l.noChange, l.catchUp, l.verifyRound} {
		if err := step(ctx, i, d); err != nil {
			return err
		}
	}
	return nil
}

// initial times the initial copies, cp -a and the two copy floors.
func (l *localRuns) initial(ctx context.Context, i int, d roundDirs) error {
	c, src := l.c, l.src
	if err := l.both(ctx, i, l.init, reads(src), []string{"initial", src, d.m, "--state", d.ms, "--no-progress"}, reads(src), []string{"-aH", src + "/", d.r + "/"}); err != nil {
		return err
	}
	if err := c.reference(ctx, l.init, reads(src), "cp", "-a", src, d.ref); err != nil {
		return err
	}
	// With the one syncfs that msync's default --fsync=pass makes too:
	// a copy that claims to be done must be on disk.
	x, err := c.timedRun(ctx, reads(src), c.Msync, "bench", "floor", "--workers", "4", "--sync", "--copy-to", c.copyDir(d.run+"floor"), src)
	if err != nil {
		return err
	}
	l.init.floor = append(l.init.floor, x.secs)
	// The same with every file written under a temp name and renamed
	// into place, as msync (and rsync) must, and recorded as msync
	// records it.
	x, err = c.timedRun(ctx, reads(src), c.Msync, "bench", "floor", "--workers", "4", "--sync", "--temp", "--record", "--copy-to", c.copyDir(d.run+"tfloor"), src)
	if err != nil {
		return err
	}
	l.init.duty = append(l.init.duty, x.secs)
	return nil
}

// noChange times the no-change passes, scanning DST and trusting it, with
// their floors; in the first round it also makes the copies the catch-up
// bytes are measured on.
func (l *localRuns) noChange(ctx context.Context, i int, d roundDirs) error {
	c, src := l.c, l.src
	// msync reads its state directory's manifests; both walk the trees.
	if err := l.both(ctx, i, l.nochange, reads(d.ms).and(src, d.m), []string{"catchup", src, d.m, "--state", d.ms, "--no-progress"}, walks(src, d.r), []string{"-aH", "--delete", src + "/", d.r + "/"}); err != nil {
		return err
	}
	// msync compares extended attributes unless told not to; rsync
	// does with -X. The generated tree has none, so this pass changes
	// nothing either.
	if err := c.reference(ctx, l.nochange, walks(src, d.r), c.Rsync, "-aHX", "--delete", src+"/", d.r+"/"); err != nil {
		return err
	}
	if err := c.floor(ctx, l.nochange, false, src, d.m); err != nil {
		return err
	}
	if err := c.dutyFloor(ctx, l.nochange, d.ms, src, d.m); err != nil {
		return err
	}
	if err := l.both(ctx, i, l.trusted, reads(d.ms).and(src), []string{"catchup", src, d.m, "--state", d.ms, "--no-progress", "--trust-dest"}, walks(src, d.r), []string{"-aH", "--delete", src + "/", d.r + "/"}); err != nil {
		return err
	}
	if err := c.floor(ctx, l.trusted, false, src); err != nil {
		return err
	}
	if err := c.dutyFloor(ctx, l.trusted, d.ms, src); err != nil {
		return err
	}
	if i == 0 {
		// Copies that measure what a remote catch-up would send.
		if err := c.quiet(ctx, c.Msync, "initial", src, l.m2, "--state", l.ms2, "--no-progress"); err != nil {
			return err
		}
		if err := c.quiet(ctx, c.Rsync, "-aH", src+"/", l.r2+"/"); err != nil {
			return err
		}
	}
	return nil
}

// catchUp mutates the source one round, times the catch-ups and their
// floors and, in the first round, measures the bytes a remote catch-up
// sends.
func (l *localRuns) catchUp(ctx context.Context, i int, d roundDirs) error {
	c, src := l.c, l.src
	if err := c.mutate(src); err != nil {
		return err
	}
	// Each reads what changed in the source (all of it is read back)
	// and walks its copy.
	if err := l.both(ctx, i, l.catchup, reads(src, d.ms).and(d.m), []string{"catchup", src, d.m, "--state", d.ms, "--no-progress"}, reads(src).and(d.r), []string{"-aH", "--delete", src + "/", d.r + "/"}); err != nil {
		return err
	}
	// The cp -a copy still has the tree as it was before the round:
	// the floor brings it up to date as rsync -a --delete would, with
	// only the calls that needs.
	x, err := c.timedRun(ctx, reads(src).and(d.ref), c.Msync, "bench", "floor", "--workers", "4", "--sync", "--update-to", d.ref, src)
	if err != nil {
		return err
	}
	l.catchup.floor = append(l.catchup.floor, x.secs)
	// The same with the last manifests decoded beside it.
	args := append([]string{"bench", "floor", "--workers", "4", "--sync", "--update-to", d.ref2}, manifestArgs(d.ms)...)
	x, err = c.timedRun(ctx, reads(src, d.ms).and(d.ref2), c.Msync, append(args, src)...)
	if err != nil {
		return err
	}
	l.catchup.duty = append(l.catchup.duty, x.secs)
	if i == 0 {
		return l.remoteBytes(ctx)
	}
	return nil
}

// remoteBytes measures what a remote catch-up of the mutated source would
// send: msync's wire bytes (--delta=always) and rsync's "Total bytes sent"
// (--no-whole-file).
func (l *localRuns) remoteBytes(ctx context.Context) error {
	c, src := l.c, l.src
	x, err := c.run(ctx, c.Msync, "catchup", src, l.m2, "--state", l.ms2, "--delta=always", "--json")
	if err != nil {
		return err
	}
	w, err := wireBytes(x.out)
	if err != nil {
		return err
	}
	l.mBytes = append(l.mBytes, w)
	x, err = c.run(ctx, c.Rsync, "-aH", "--delete", "--no-whole-file", "--stats", src+"/", l.r2+"/")
	if err != nil {
		return err
	}
	mm := bytesSent.FindStringSubmatch(x.out)
	if mm == nil {
		return fmt.Errorf("rsync --stats: no 'Total bytes sent' in:\n%s", x.out)
	}
	n, _ := strconv.ParseInt(strings.ReplaceAll(mm[1], ",", ""), 10, 64)
	l.rBytes = append(l.rBytes, float64(n))
	return nil
}

// verifyRound times verify against rsync -n -c, without and with xattrs,
// and the read floor.
func (l *localRuns) verifyRound(ctx context.Context, i int, d roundDirs) error {
	c, src := l.c, l.src
	// Read the three trees once, untimed: with every copy kept, the page
	// cache may no longer hold them all, and in a scale-1.0 run the tool
	// that went first took 4.9 s against 3.8 s for msync going second.
	if !c.DropCaches {
		if err := c.quiet(ctx, c.Msync, "bench", "floor", "--read", src, d.m, d.r); err != nil {
			return err
		}
	}
	// Like for like: rsync -aHn -c compares no xattrs, so msync does
	// not either; the reference compares them on both sides.
	if err := l.both(ctx, i, l.verify, reads(src, d.m), []string{"verify", "-q", "--no-xattrs", src, d.m}, reads(src, d.r), []string{"-aHn", "-c", "--delete", src + "/", d.r + "/"}); err != nil {
		return err
	}
	if err := alternate(i, l.timed(ctx, &l.verify.mref, &l.verify.mrrss, reads(src, d.m), c.Msync, []string{"verify", "-q", src, d.m}),
		l.timed(ctx, &l.verify.ref, &l.verify.crs, reads(src, d.r), c.Rsync, []string{"-aHXn", "-c", "--delete", src + "/", d.r + "/"})); err != nil {
		return err
	}
	return c.floor(ctx, l.verify, true, src, d.m)
}

// rows are the local rows of the table, in its order: the five timed
// passes, the catch-up's bytes and the initial copy's peak RSS per file.
func (l *localRuns) rows(files int64) []Row {
	initRow := l.init.row("initial copy (msync initial vs rsync -aH; cp -a for reference)", "s", 0.5, "")
	initRow.RefName = "cp -a"
	nochangeRow := l.nochange.row("no-change pass (catchup vs rsync -aH --delete)", "s", 0.3, "")
	nochangeRow.RefName = "rsync -aHX --delete, which compares xattrs as msync does"
	verifyRow := l.verify.row("verify identical trees (msync verify --no-xattrs vs rsync -aHn -c --delete: neither compares xattrs)", "s", 0.5, "")
	verifyRow.RefName = "msync verify vs rsync -aHXn -c --delete: both compare xattrs"
	rows := []Row{initRow, nochangeRow,
		l.trusted.row("no-change pass, catchup --trust-dest (DST not scanned) vs rsync -aH --delete", "s", 0.3, "the downtime pass"),
		l.catchup.row("catch-up after one mutate round", "s", 0.5, "each run mutates with the next round"),
		verifyRow}
	bytesRow := Row{Name: "catch-up bytes a remote transfer sends (msync --delta=always vs rsync --no-whole-file --stats)", Unit: "bytes",
		Msync: summarize(l.mBytes, nil), Rsync: summarize(l.rBytes, nil), Target: 0.8, Note: "first round"}
	if bytesRow.Rsync.Median > 0 {
		bytesRow.Ratio = bytesRow.Msync.Median / bytesRow.Rsync.Median
	}
	rows = append(rows, bytesRow)
	mem := Row{Name: "peak RSS per file, initial copy", Unit: "B/file",
		Msync: Summary{Median: float64(rows[0].Msync.RSSKB*1024) / float64(files), N: 1},
		Rsync: Summary{Median: float64(rows[0].Rsync.RSSKB*1024) / float64(files), N: 1}, Note: "peak RSS of the process tree / files"}
	if mem.Rsync.Median > 0 {
		mem.Ratio = mem.Msync.Median / mem.Rsync.Median
	}
	return append(rows, mem)
}
