package estimate

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// costs are the true costs of the synthetic passes below.
type costs struct {
	fixed     float64 // seconds at 10,000 entries, the merge's own time
	path      float64 // seconds a written path takes the workers, side by side
	byteT     float64 // seconds a byte takes the workers
	writeback float64 // seconds the commit takes per byte streamed
	del       float64 // seconds a deletion takes at the end of the pass
}

// pass builds the record of a pass that wrote paths paths (bytes bytes)
// and deleted deleted, as the engine measures it: two workers share the
// transfer, the commit writes back the bytes and a block per path.
func (c costs) pass(kind string, gap time.Duration, paths, deleted, bytes float64) Point {
	pathT, byteT := c.path*paths, c.byteT*bytes
	commit := c.writeback * (bytes + metaBlock*paths)
	finish := c.del * deleted
	d := c.fixed + pathT + byteT + finish + commit
	return Point{Kind: kind, Gap: gap, Entries: 10000, Files: paths + deleted, Deleted: deleted, Bytes: bytes, SrcBytes: 1e9,
		Duration: secs(d), Transfer: secs(c.fixed + pathT + byteT), Finish: secs(finish), Commit: secs(commit),
		Work: secs(2 * (pathT + byteT)), Copy: secs(2 * byteT), Merge: secs(c.fixed), Unlink: secs(finish)}
}

// quiet is an initial copy then n catch-ups that found nothing; old
// drops the split, as in passes recorded before it was measured.
func (c costs) quiet(n int, old bool) []Point {
	pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
	for range n {
		pts = append(pts, c.pass("catchup", time.Hour, 0, 0, 0))
	}
	if old {
		for i := range pts {
			pts[i].Work, pts[i].Copy, pts[i].Merge, pts[i].Unlink = 0, 0, 0, 0
		}
	}
	return pts
}

func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9+1e-5*math.Abs(want) {
		t.Errorf("%s: %g, want %g", what, got, want)
	}
}

// After catch-ups that found nothing, the initial copy alone prices a
// path and a byte, from its own split of its time; a deletion is priced
// at deletePrior of a path until a pass deleted something.
func TestDirectPricesFromTheInitialCopy(t *testing.T) {
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9, del: 20e-6}
	pts := c.quiet(3, false)
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Direct || m.Split || !m.FixedMeasured || m.DeleteMeasured || !m.FromInitial {
		t.Fatalf("direct %v, split %v, fixed measured %v, delete measured %v, from initial %v", m.Direct, m.Split, m.FixedMeasured, m.DeleteMeasured, m.FromInitial)
	}
	within(t, "fixed", m.Fixed.Seconds(), c.fixed)
	// A path: the workers' time and its block of writeback; a byte: the
	// workers' time and its writeback.
	within(t, "per path", m.PerFile.Seconds(), c.path+c.writeback*metaBlock)
	within(t, "per byte", m.PerByte, c.byteT+c.writeback)
	within(t, "per deletion", m.PerDelete.Seconds(), deletePrior*m.PerFile.Seconds())

	// A burst: 600 paths written, 400 deleted, 10 MB.
	p := m.PredictMeasured(Measured{Files: 1000, Deleted: 400, Bytes: 1e7, Entries: 10000}, 0, false)
	want := c.fixed + 600*m.PerFile.Seconds() + 400*m.PerDelete.Seconds() + 1e7*m.PerByte
	within(t, "burst", p.Total.Seconds(), want)
	// The range: the changes at half their price (priced by the initial
	// copy alone), the run-to-run noise, and a deletion's price from half
	// to twice the guess.
	d := 400 * m.PerDelete.Seconds()
	change := want - c.fixed
	within(t, "low", p.Low.Seconds(), min(want*(1-PassNoise), want-change*(1-initialLow))-d/2)
	within(t, "high", p.High.Seconds(), want/(1-PassNoise)+d)
	// The old half-and-half split would have priced the bytes at half the
	// initial copy's time over its bytes: more than twice this.
	if half := (pts[0].Duration.Seconds() - c.fixed) / 2 / 1e8; m.PerByte > half/2 {
		t.Errorf("per byte %g, not below half the half split's %g", m.PerByte, half)
	}
}

// Catch-ups that changed the same mix each time cannot tell the fixed cost
// from the cost of changes by regression; the measured fixed cost can, and
// deletions are priced from the passes that deleted.
func TestDirectPricesFromCollinearCatchups(t *testing.T) {
	c := costs{fixed: 0.13, path: 30e-6, byteT: 0.8e-9, writeback: 0.6e-9, del: 14e-6}
	pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
	for _, k := range []float64{8, 4, 2} { // a shrinking backlog, same mix
		pts = append(pts, c.pass("catchup", 3*time.Hour, 100*k, 150*k, 1e6*k))
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Direct || !m.DeleteMeasured || m.FromInitial {
		t.Fatalf("direct %v, delete measured %v, from initial %v", m.Direct, m.DeleteMeasured, m.FromInitial)
	}
	within(t, "fixed", m.Fixed.Seconds(), c.fixed)
	within(t, "per deletion", m.PerDelete.Seconds(), c.del)
	within(t, "per path", m.PerFile.Seconds(), c.path+c.writeback*metaBlock)
	within(t, "per byte", m.PerByte, c.byteT+c.writeback)
	truth := c.pass("final", time.Hour, 50, 80, 5e5)
	p := m.PredictMeasured(Measured{Files: truth.Files, Deleted: truth.Deleted, Bytes: truth.Bytes, Entries: 10000}, 0, false)
	within(t, "final", p.Total.Seconds(), truth.Duration.Seconds())
	if p.Low > truth.Duration || p.High < truth.Duration {
		t.Errorf("range %v - %v does not hold %v", p.Low, p.High, truth.Duration)
	}
	// From history alone, a deletion's share of the changed paths is the
	// catch-ups'.
	within(t, "deleted share", m.DeletedShare, 150.0/250)
}

// A history recorded before passes measured their split prices as before:
// no direct pricing, the regression's fixed cost.
func TestOldRecordsPriceAsBefore(t *testing.T) {
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9}
	m, err := Fit(c.quiet(3, true))
	if err != nil {
		t.Fatal(err)
	}
	if m.Direct || m.FixedMeasured || !m.Split {
		t.Fatalf("direct %v, fixed measured %v, split %v", m.Direct, m.FixedMeasured, m.Split)
	}
}

// A catch-up that only deleted prices deletions with all of its time
// beyond the fixed cost (its commit too): none of it is a path's.
func TestDeletionOnlyPassPricesNoPath(t *testing.T) {
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9, del: 20e-6}
	pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
	pts = append(pts, c.pass("catchup", time.Hour, 200, 0, 1e6), c.pass("catchup", time.Hour, 250, 0, 2e6))
	d := c.pass("catchup", time.Hour, 0, 20000, 0)
	d.Commit = 300 * time.Millisecond // the sync after 20,000 unlinks
	d.Duration += d.Commit
	pts = append(pts, d)
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	within(t, "per path", m.PerFile.Seconds(), c.path+c.writeback*metaBlock)
	within(t, "per deletion", m.PerDelete.Seconds(), c.del+0.3/20000)
}

// The end of a pass also makes hard links and sets directories'
// metadata: only its deletions' own time (Unlink) prices a deletion.
func TestEndOfPassIsNotAllDeletion(t *testing.T) {
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9, del: 20e-6}
	pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
	for _, n := range []float64{2000, 1500, 2500} {
		p := c.pass("catchup", time.Hour, n, 1, 1e6)
		links := time.Duration(n) * 30 * time.Microsecond // n hard links made at the end
		p.Finish += links
		p.Duration += links
		pts = append(pts, p)
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	within(t, "per deletion", m.PerDelete.Seconds(), c.del)
	// The links are priced as the paths they are.
	within(t, "per path", m.PerFile.Seconds(), c.path+c.writeback*metaBlock+30e-6)
}

// What every pass pays after its merge (the commit of nothing, the
// writer's end) is fixed cost, not the changed paths': from the quiet
// catch-ups when there are some, else from the commits against what they
// wrote back.
func TestFixedIncludesTheCommitOfNothing(t *testing.T) {
	const tail = 20 * time.Millisecond
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9}
	for _, quiet := range []bool{true, false} {
		pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
		for i := range 6 {
			n := 50.0 * float64(i+1)
			if quiet && i%2 == 0 {
				n = 0
			}
			p := c.pass("catchup", time.Hour, n, 0, n*1e3)
			p.Commit += tail
			p.Duration += tail
			pts = append(pts, p)
		}
		m, err := Fit(pts)
		if err != nil {
			t.Fatal(err)
		}
		within(t, fmt.Sprintf("fixed (quiet catch-ups: %v)", quiet), m.Fixed.Seconds(), c.fixed+tail.Seconds())
		truth := c.pass("final", 0, 2000, 0, 2e6).Duration + tail
		p := m.PredictMeasured(Measured{Files: 2000, Bytes: 2e6, Entries: 10000}, 0, false)
		within(t, fmt.Sprintf("2000 paths (quiet catch-ups: %v)", quiet), p.Total.Seconds(), truth.Seconds())
	}
}

// The merge also does per-path work (directories made, metadata set): a
// catch-up that changed much does not raise the fixed cost; its merge's
// growth is priced per path.
func TestBusyMergeIsNotFixedCost(t *testing.T) {
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9}
	const perMeta = 50 * time.Microsecond // on the merge's goroutine
	pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
	for _, n := range []float64{100, 3000, 200, 10000} {
		p := c.pass("catchup", time.Hour, n, 0, n*1e3)
		p.Merge += time.Duration(n) * perMeta
		p.Transfer += time.Duration(n) * perMeta
		p.Duration += time.Duration(n) * perMeta
		pts = append(pts, p)
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	within(t, "fixed", m.Fixed.Seconds(), c.fixed)
	q := m.PredictMeasured(Measured{Entries: 10000}, 0, false)
	if q.Low > secs(c.fixed) || q.High < secs(c.fixed) {
		t.Errorf("a quiet pass (%v) outside %v - %v", secs(c.fixed), q.Low, q.High)
	}
}

// A catch-up or two with a handful of changes leave the prices to the
// initial copy, and its range reaches down as when they found nothing.
func TestFewChangesStillPricedByTheInitialCopy(t *testing.T) {
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9}
	pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
	for _, n := range []float64{0, 0, 1} {
		pts = append(pts, c.pass("catchup", time.Hour, n, 0, 0))
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	if !m.FromInitial {
		t.Errorf("the initial copy priced 10,000 of 10,001 paths, but FromInitial is false")
	}
}

// A history recorded before passes split their time still gets a range
// at least one pass's noise wide.
func TestOldRecordsRangeAtLeastTheNoise(t *testing.T) {
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9}
	m, err := Fit(c.quiet(4, true))
	if err != nil {
		t.Fatal(err)
	}
	p := m.PredictMeasured(Measured{Files: 10, Bytes: 1e4, Entries: 10000}, 0, false)
	if !m.Split || p.Low.Seconds() > p.Total.Seconds()*(1-PassNoise)+1e-9 || p.High.Seconds() < p.Total.Seconds()/(1-PassNoise)-1e-9 {
		t.Errorf("split %v: range %v - %v narrower than -20%%/+25%% of %v", m.Split, p.Low, p.High, p.Total)
	}
}
