package estimate

import (
	"math"
	"testing"
	"time"
)

func near(a, b time.Duration) bool { return math.Abs(a.Seconds()-b.Seconds()) < 1e-6 }

// A probe's measured work is priced with the fitted costs, and the change
// expected between now and the stop is added at the fitted rates.
func TestPredictMeasuredAddsGrowth(t *testing.T) {
	m := &Model{Fixed: time.Second, Entries: 1000, PerFile: 10 * time.Millisecond, PerByte: 1e-8,
		FilesPerSec: 1, FilesBase: 50, BytesPerSec: 1000, BytesBase: 1e6, Recheck: 500 * time.Millisecond, CostSpread: 0.1, Spread: 0.5}
	w := Measured{Files: 100, Bytes: 1e6, Entries: 1000}

	// Now: exactly what was measured (the base change is not added again:
	// the probe sees what changed so far).
	p := m.PredictMeasured(w, 0, true)
	if p.Files != 100 || p.Bytes != 1e6 || !p.Probed {
		t.Fatalf("at the probe: %+v", p)
	}
	want := secs(1 + 100*0.01 + 1e6*1e-8 + 0.5)
	if !near(p.Total, want) {
		t.Errorf("total %v, want %v", p.Total, want)
	}
	// The fit's spread (10%) is narrower than one pass's run-to-run
	// noise: the range is that.
	if !near(p.Low, secs(want.Seconds()*(1-PassNoise))) || !near(p.High, secs(want.Seconds()/(1-PassNoise))) {
		t.Errorf("range %v - %v, want %v - %v", p.Low, p.High, secs(want.Seconds()*(1-PassNoise)), secs(want.Seconds()/(1-PassNoise)))
	}

	// A minute to the stop: 60 more paths, 60 kB more.
	g := m.PredictMeasured(w, time.Minute, true)
	if g.GrowthFiles != 60 || g.GrowthBytes != 60000 || g.Files != 160 || g.Bytes != 1e6+60000 {
		t.Fatalf("growth: %+v", g)
	}
	growth := secs(60*0.01 + 60000*1e-8)
	if !near(g.Total, want+growth) {
		t.Errorf("total %v, want %v", g.Total, want+growth)
	}
	// The growth part ranges from none to twice the expected.
	if !near(g.Low, secs(want.Seconds()*(1-PassNoise))) || !near(g.High, secs(want.Seconds()/(1-PassNoise)+2*growth.Seconds())) {
		t.Errorf("range %v - %v", g.Low, g.High)
	}
	if g.Low > g.Total || g.High < g.Total {
		t.Errorf("range %v - %v does not contain %v", g.Low, g.High, g.Total)
	}
	// A stop already passed adds nothing.
	if n := m.PredictMeasured(w, -time.Hour, true); n.Files != 100 {
		t.Errorf("negative growth: %+v", n)
	}
	// The re-check of a final pass is one more scan of the source: the
	// probe's own, until a final pass measured it.
	w2 := w
	w2.Scan = 2 * time.Second
	if r := m.PredictMeasured(w2, 0, true); r.Recheck != 2*time.Second || !near(r.Total, want+1500*time.Millisecond) {
		t.Errorf("probe's scan as the re-check: %v, total %v", r.Recheck, r.Total)
	}
	m.Measured = true
	if r := m.PredictMeasured(w2, 0, true); r.Recheck != 500*time.Millisecond {
		t.Errorf("a measured re-check replaced: %v", r.Recheck)
	}
	m.Measured = false
	// Growth stops at the whole tree changing; the range with it.
	m.MaxFiles, m.MaxBytes, m.LongestGap = 1000, 2e6, time.Hour
	c := m.PredictMeasured(w, 100*time.Hour, true)
	if !c.Capped || c.Files != 1000 || c.GrowthFiles != 900 || c.Bytes != 2e6 || c.GrowthBytes != 1e6 || c.Extrapolated != 100 {
		t.Errorf("capped growth: %+v", c)
	}
	if c.High > secs(c.Total.Seconds()/(1-PassNoise)+2*(900*0.01+1e6*1e-8)) {
		t.Errorf("range beyond the capped growth: %v", c.High)
	}
	m.MaxFiles, m.MaxBytes, m.LongestGap = 0, 0, 0
	// More entries now cost more scanning.
	if big := m.PredictMeasured(Measured{Files: 100, Bytes: 1e6, Entries: 2000}, 0, true); !near(big.Scan, 2*time.Second) {
		t.Errorf("scan at twice the entries: %v", big.Scan)
	}
}

// The probe's range contains the true cost of the pending work when the
// fit's spread is honest: synthetic passes with ±8% noise.
func TestPredictMeasuredRangeContainsTruth(t *testing.T) {
	var pts []Point
	pts = append(pts, Point{Kind: "initial", Entries: 10000, Files: 10000, Bytes: 1e9, Duration: 30 * time.Second})
	noise := []float64{1.08, 0.93, 1.05, 0.95, 1.0}
	for i, g := range []float64{600, 1800, 1200, 2400, 900} {
		p := synth(g)
		p.Duration = secs(p.Duration.Seconds() * noise[i])
		pts = append(pts, p)
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	// A burst of twice the largest catch-up's change: 2500 paths, 5e8 bytes.
	truth := secs(0.5 + 0.002*2500 + 1e-8*5e8)
	p := m.PredictMeasured(Measured{Files: 2500, Bytes: 5e8, Entries: 10000}, 0, false)
	if p.Low > truth || p.High < truth {
		t.Errorf("range %v - %v does not contain %v (predicted %v)", p.Low, p.High, truth, p.Total)
	}
	if rel := math.Abs(p.Total.Seconds()-truth.Seconds()) / truth.Seconds(); rel > 0.2 {
		t.Errorf("predicted %v, true %v: %.0f%% off", p.Total, truth, 100*rel)
	}
	// History alone, at the longest gap seen, expects far less.
	if h := m.Predict(secs(2400), 0, false); h.Total > truth/2 {
		t.Errorf("history alone %v: the burst should be invisible to it", h.Total)
	}
}

// Catch-ups that found nothing say nothing of the cost per path and per
// byte; the initial copy does.
func TestFitQuietCatchupsUseInitial(t *testing.T) {
	pts := []Point{{Kind: "initial", Entries: 1000, Files: 1000, Bytes: 1e8, Duration: 3 * time.Second}}
	for _, g := range []float64{600, 600, 600} {
		pts = append(pts, Point{Kind: "catchup", Gap: secs(g), Entries: 1000, Duration: 200 * time.Millisecond})
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	if m.PerFile <= 0 && m.PerByte <= 0 {
		t.Fatalf("no cost per path or byte: %+v", m)
	}
	if math.Abs(m.Fixed.Seconds()-0.2) > 0.01 {
		t.Errorf("fixed %v, want the quiet passes' 200ms", m.Fixed)
	}
	// A probe that finds the whole tree changed predicts about the initial
	// copy's cost.
	p := m.PredictMeasured(Measured{Files: 1000, Bytes: 1e8, Entries: 1000}, 0, false)
	if p.Total < 2*time.Second || p.Total > 4*time.Second {
		t.Errorf("whole tree changed: %v, want about 3s", p.Total)
	}
}
