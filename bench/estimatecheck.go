package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/estimate"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
)

// CheckConfig configures EstimateCheck.
type CheckConfig struct {
	Dir   string  // work directory (emptied)
	Scale float64 // tree size
	Seed  uint64
	// Unit is the stretch of a live server's time two Mutate rounds stand
	// for (an odd round rewrites an mbox, an even one does not: a pair is
	// a steadier sample of a server's changes): a gap of 3 units is six
	// rounds of changes.
	Unit time.Duration
	// History are the gaps (in units) of the catch-ups the estimator learns
	// from before the first prediction; Checks are the gaps of the passes it
	// predicts, each then added to what it knows. The last check is run as
	// a final pass.
	History, Checks []int
	Log             io.Writer
}

// CheckRow is one predicted pass.
type CheckRow struct {
	Pass      int           `json:"pass"`
	Gap       time.Duration `json:"gap_ns"`
	Final     bool          `json:"final"`
	Predicted time.Duration `json:"predicted_ns"`
	Low       time.Duration `json:"low_ns"`
	High      time.Duration `json:"high_ns"`
	Actual    time.Duration `json:"actual_ns"`
	ErrPct    float64       `json:"error_pct"`
	Dominant  string        `json:"dominant"`
	Files     float64       `json:"predicted_paths"`
	Changed   float64       `json:"actual_paths"`
}

// CheckResult is the outcome of EstimateCheck.
type CheckResult struct {
	Entries int64      `json:"entries"`
	Rows    []CheckRow `json:"rows"`
	Within  int        `json:"within_25pct"`
}

// EstimateCheck replays a migration: a generated tree, an initial copy,
// catch-ups after varied gaps (changes applied in proportion to the gap),
// then for each check pass a prediction from the history so far, the real
// pass, and the two side by side.
func EstimateCheck(ctx context.Context, c CheckConfig) (*CheckResult, error) {
	if c.Unit == 0 {
		c.Unit = 10 * time.Minute
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return nil, err
	}
	src, dst, sd := filepath.Join(c.Dir, "src"), filepath.Join(c.Dir, "dst"), filepath.Join(c.Dir, "state")
	fmt.Fprintf(c.Log, "estimate-check: generating scale %g in %s\n", c.Scale, c.Dir)
	if _, err := Gen(src, c.Seed, c.Scale); err != nil {
		return nil, err
	}
	round := 0
	var gaps []time.Duration // simulated gap of each catch-up, in order
	pass := func(kind engine.Kind, units int, final bool) (*record.Result, time.Duration, error) {
		for range 2 * units {
			round++
			if _, err := Mutate(src, c.Seed, round); err != nil {
				return nil, 0, err
			}
		}
		settle()
		t := time.Now()
		res, err := engine.Run(ctx, engine.Options{Kind: kind, Src: src, Dst: dst, StateDir: sd, Final: final, Xattrs: true, Owners: os.Geteuid() == 0})
		took := time.Since(t)
		if err == nil && kind == engine.Catchup {
			gaps = append(gaps, time.Duration(units)*c.Unit)
		}
		return res, took, err
	}
	history := func() ([]estimate.Point, error) {
		ps, err := state.Passes(sd)
		if err != nil {
			return nil, err
		}
		pts := estimate.Points(ps)
		// The passes ran seconds apart; give them the gaps they stand for.
		k := 0
		for i := range pts {
			if pts[i].Kind == "initial" {
				continue
			}
			if k < len(gaps) {
				pts[i].Gap = gaps[k]
			}
			k++
		}
		return pts, nil
	}
	res, _, err := pass(engine.Initial, 0, false)
	if err != nil {
		return nil, err
	}
	out := &CheckResult{Entries: res.Stats.Entries}
	for _, u := range c.History {
		if _, took, err := pass(engine.Catchup, u, false); err != nil {
			return nil, err
		} else {
			fmt.Fprintf(c.Log, "estimate-check: learning: catch-up after %s took %s\n", time.Duration(u)*c.Unit, took.Round(time.Millisecond))
		}
	}
	for i, u := range c.Checks {
		final := i == len(c.Checks)-1
		pts, err := history()
		if err != nil {
			return nil, err
		}
		m, err := estimate.Fit(pts)
		if err != nil {
			return nil, err
		}
		gap := time.Duration(u) * c.Unit
		pr := m.Predict(gap, 0, final)
		res, took, err := pass(engine.Catchup, u, final)
		if err != nil {
			return nil, err
		}
		s := res.Stats
		row := CheckRow{Pass: len(gaps), Gap: gap, Final: final, Predicted: pr.Total, Low: pr.Low, High: pr.High, Actual: took,
			ErrPct: 100 * (pr.Total.Seconds() - took.Seconds()) / took.Seconds(), Dominant: pr.Dominant,
			Files: pr.Files, Changed: float64(s.Changed())}
		if math.Abs(row.ErrPct) <= 25 {
			out.Within++
		}
		out.Rows = append(out.Rows, row)
		fmt.Fprintf(c.Log, "estimate-check: gap %s: predicted %s, took %s (%+.0f%%)\n", gap, pr.Total.Round(time.Millisecond), took.Round(time.Millisecond), row.ErrPct)
	}
	return out, nil
}

// Markdown writes the comparison as a table.
func (r *CheckResult) Markdown(w io.Writer) {
	fmt.Fprintf(w, "| pass | gap | predicted (range) | actual | error | changed paths predicted / actual | dominated by |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		kind := ""
		if row.Final {
			kind = " (final)"
		}
		fmt.Fprintf(w, "| %d%s | %s | %.3f s (%.3f-%.3f) | %.3f s | %+.0f%% | %.0f / %.0f | %s |\n", row.Pass, kind, row.Gap, row.Predicted.Seconds(),
			row.Low.Seconds(), row.High.Seconds(), row.Actual.Seconds(), row.ErrPct, row.Files, row.Changed, row.Dominant)
	}
	fmt.Fprintf(w, "\n%d of %d predictions within ±25%% (tree: %d entries)\n", r.Within, len(r.Rows), r.Entries)
}
