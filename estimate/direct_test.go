package estimate

import (
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
		Work: secs(2 * (pathT + byteT)), Copy: secs(2 * byteT), Merge: secs(c.fixed)}
}

func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9+1e-6*math.Abs(want) {
		t.Errorf("%s: %g, want %g", what, got, want)
	}
}

// After catch-ups that found nothing, the initial copy alone prices a
// path and a byte, from its own split of its time; a deletion is priced
// at deletePrior of a path until a pass deleted something.
func TestDirectPricesFromTheInitialCopy(t *testing.T) {
	c := costs{fixed: 0.1, path: 40e-6, byteT: 1e-9, writeback: 0.5e-9, del: 20e-6}
	pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
	for range 3 {
		pts = append(pts, c.pass("catchup", time.Hour, 0, 0, 0))
	}
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
	pts := []Point{c.pass("initial", 0, 10000, 0, 1e8)}
	for range 3 {
		pts = append(pts, c.pass("catchup", time.Hour, 0, 0, 0))
	}
	for i := range pts {
		pts[i].Work, pts[i].Copy, pts[i].Merge = 0, 0, 0
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Direct || m.FixedMeasured || !m.Split {
		t.Fatalf("direct %v, fixed measured %v, split %v", m.Direct, m.FixedMeasured, m.Split)
	}
}
