package estimate

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/record"
)

func synth(gapSec float64) Point {
	f := 10 + 0.5*gapSec
	b := 1e5 * gapSec
	d := 0.5 + 0.002*f + 1e-8*b
	return Point{Gap: secs(gapSec), Entries: 10000, Files: f, Bytes: b, Duration: secs(d), Kind: "catchup"}
}

func TestFitRecoversModel(t *testing.T) {
	pts := []Point{{Kind: "initial", Entries: 10000, Files: 10000, Bytes: 1e9, Duration: 30 * time.Second}}
	for _, g := range []float64{600, 1800, 1200, 2400} {
		pts = append(pts, synth(g))
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []float64{300, 3000, 7200} {
		want := synth(g).Duration
		got := m.Predict(secs(g), 0, false)
		if rel := math.Abs(got.Total.Seconds()-want.Seconds()) / want.Seconds(); rel > 0.01 {
			t.Errorf("gap %vs: predicted %v, true %v (%.1f%% off)", g, got.Total, want, 100*rel)
		}
		if got.Low > got.Total || got.High < got.Total || got.Low == got.High {
			t.Errorf("range %v..%v around %v", got.Low, got.High, got.Total)
		}
	}
	if m.Spread > 0.11 {
		t.Errorf("spread %.2f on exact data", m.Spread)
	}
	// The final pass adds a re-check, estimated at half the fixed cost.
	p := m.Predict(secs(600), 0, true)
	if p.Recheck <= 0 || p.Total <= m.Predict(secs(600), 0, false).Total {
		t.Errorf("final pass without re-check: %+v", p)
	}
	// A long gap is dominated by bytes here (1e5 B/s x 1e-8 s/B = 1 ms per
	// second of gap vs 1 ms for files): at 7200 s the scan is 0.5 s.
	if d := m.Predict(secs(100000), 0, false).Dominant; d == "scan" {
		t.Errorf("dominant at a long gap: %s", d)
	}
	if d := m.Predict(secs(1), 0, false).Dominant; d != "scan" {
		t.Errorf("dominant at a short gap: %s", d)
	}
}

func TestFitNeedsCatchup(t *testing.T) {
	_, err := Fit([]Point{{Kind: "initial", Files: 5, Duration: time.Second}})
	if !errors.Is(err, ErrTooFew) {
		t.Fatalf("err = %v", err)
	}
}

func TestFromPass(t *testing.T) {
	p := record.Pass{Kind: "catchup", OK: true, GapSeconds: 60, Duration: 2 * time.Second,
		Stats: record.Stats{Entries: 100, Created: 1, Updated: 2, MetaOnly: 3, Deleted: 4, HardLinks: 5, DataBytes: 7}}
	pt := FromPass(&p)
	if pt.Files != 15 || pt.Bytes != 7 || pt.Gap != time.Minute || pt.Entries != 100 {
		t.Fatalf("%+v", pt)
	}
}

func TestLineFit(t *testing.T) {
	if a, b := lineFit([]float64{10}, []float64{50}, nil); a != 5 || b != 0 {
		t.Errorf("one point: %v %v", a, b)
	}
	if a, b := lineFit([]float64{1, 2, 3}, []float64{12, 14, 16}, nil); math.Abs(a-2) > 1e-9 || math.Abs(b-10) > 1e-9 {
		t.Errorf("line: %v %v", a, b)
	}
	if a, b := lineFit([]float64{1, 2}, []float64{5, 1}, nil); a != 0 || b != 3 {
		t.Errorf("falling: %v %v (want a flat mean)", a, b)
	}
}

func TestMakespan(t *testing.T) {
	s := time.Second
	// a, b, c in parallel 2 at a time; d waits for a and c.
	got := Makespan([]time.Duration{3 * s, 1 * s, 1 * s, 2 * s}, [][]int{nil, nil, nil, {0, 2}}, 2)
	if got != 5*s {
		t.Fatalf("makespan %v, want 5s", got)
	}
}

func TestPredictCapsAndFlagsExtrapolation(t *testing.T) {
	var pts []Point
	for _, g := range []float64{1, 2, 3} {
		p := synth(g)
		p.SrcBytes = 5e5
		pts = append(pts, p)
	}
	m, err := Fit(pts)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Predict(time.Hour, 0, false)
	if !p.Capped || p.Bytes != 5e5 || p.Files > 10000 {
		t.Errorf("an hour at a rate fitted over seconds: %+v, want the change capped at the tree", p)
	}
	if p.Extrapolated < 1000 || !strings.Contains(p.Explain(), "extrapolated") {
		t.Errorf("extrapolation not flagged: %v %q", p.Extrapolated, p.Explain())
	}
	if q := m.Predict(2*time.Second, 0, false); q.Extrapolated != 0 || q.Capped {
		t.Errorf("a gap like those seen is flagged: %+v", q)
	}
}
