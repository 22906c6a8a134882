package migrate

import (
	"fmt"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/estimate"
	"github.com/msync/msync/plan"
	"github.com/msync/msync/sync/state"
)

// History is what the window estimate needs of one dataset: its passes
// and the datasets it starts after (plan order); what a probe found
// pending now (nil: history alone) and the last verification (nil: none).
type History struct {
	Name, Class string
	Passes      []record.Pass
	After       []int
	Probe       *ProbeResult
	Verify      *record.Verify
}

// Prediction is one dataset's estimate.
type Prediction struct {
	Name       string               `json:"name"`
	Class      string               `json:"class,omitempty"`
	Passes     int                  `json:"catchup_passes"`
	Gap        float64              `json:"gap_seconds"`
	Files      float64              `json:"expected_changed_paths"`
	Bytes      float64              `json:"expected_bytes"`
	Seconds    float64              `json:"seconds"`
	Low        float64              `json:"low_seconds"`
	High       float64              `json:"high_seconds"`
	Dominant   string               `json:"dominant"`
	Explain    string               `json:"explanation"`
	Error      string               `json:"error,omitempty"`
	Prediction *estimate.Prediction `json:"-"`
	// Probe is what was pending when probed (estimate --probe); the
	// prediction is then that plus the growth expected over Gap.
	Probe       *ProbeResult `json:"probe,omitempty"`
	ProbeTook   float64      `json:"probe_seconds,omitempty"`
	GrowthFiles float64      `json:"growth_paths,omitempty"`
	GrowthBytes float64      `json:"growth_bytes,omitempty"`
	// Verify is the predicted verification after the final pass, from
	// the last one's speed; VerifyNote says why there is none.
	Verify     *Term  `json:"verify,omitempty"`
	VerifyNote string `json:"verify_note,omitempty"`
}

// Term is one part of the downtime window, in seconds with a range.
type Term struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Low     float64 `json:"low_seconds"`
	High    float64 `json:"high_seconds"`
	Note    string  `json:"note,omitempty"`
}

// Window is the estimate of a whole final pass.
type Window struct {
	Datasets []Prediction `json:"datasets"`
	Seconds  float64      `json:"seconds"`
	Low      float64      `json:"low_seconds"`
	High     float64      `json:"high_seconds"`
	Parallel int          `json:"parallel"`
	At       *time.Time   `json:"at,omitempty"`
	// Terms are the parts of the downtime in order: the final pass (the
	// above), the verification when one ran before, the plan's [window]
	// steps; Downtime is their sum.
	Terms    []Term `json:"terms"`
	Downtime Term   `json:"downtime"`
}

// EstimateWindow predicts the final pass of every history after gap (or,
// with at set, after the time from each dataset's last pass to at), run
// parallel at a time in plan order. A probed history is predicted from
// what its probe measured plus the change expected from the probe to the
// stop (gap, or until at). A dataset without a prediction counts as taking
// no time and carries its Error. The window's terms are the final pass and,
// when every dataset has a verify record, the verification (AddSteps adds
// a plan's fixed steps).
func EstimateWindow(hs []History, parallel int, gap time.Duration, at time.Time) (*Window, error) {
	w := &Window{Parallel: max(1, parallel)}
	if !at.IsZero() {
		w.At = &at
	}
	for _, h := range hs {
		pr := Prediction{Name: h.Name, Class: h.Class}
		g := gap
		if !at.IsZero() {
			last := state.LastEnd(h.Passes)
			if last.IsZero() || at.Before(last) {
				return nil, fmt.Errorf("--at %s: %s's last pass ended %s, after it", at.Format("2006-01-02 15:04"), h.Name, last.Local().Format("2006-01-02 15:04"))
			}
			g = at.Sub(last)
		}
		if h.Probe != nil {
			// From the probe to the stop: --gap, or until --at.
			g = gap
			if !at.IsZero() {
				if g = at.Sub(h.Probe.At); g < -time.Minute {
					return nil, fmt.Errorf("--at %s: in the past (probed %s)", at.Format("2006-01-02 15:04"), h.Probe.At.Local().Format("2006-01-02 15:04"))
				}
				g = max(g, 0)
			}
		}
		m, err := estimate.Fit(estimate.Points(h.Passes))
		switch {
		case err != nil:
			pr.Error = err.Error()
		case h.Probe != nil:
			pb := h.Probe
			p := m.PredictMeasured(estimate.Measured{Files: float64(pb.Paths()), Deleted: float64(pb.Deleted.Paths), Bytes: float64(pb.CopyBytes), Entries: float64(pb.Entries), Scan: pb.Took}, g, true)
			pr.Passes, pr.Gap, pr.Files, pr.Bytes = m.Catchup, g.Seconds(), p.Files, p.Bytes
			pr.Seconds, pr.Low, pr.High = p.Total.Seconds(), p.Low.Seconds(), p.High.Seconds()
			pr.Dominant, pr.Explain, pr.Prediction = p.Dominant, p.Explain(), &p
			pr.Probe, pr.ProbeTook, pr.GrowthFiles, pr.GrowthBytes = pb, pb.Took.Seconds(), p.GrowthFiles, p.GrowthBytes
		default:
			p := m.Predict(g, 0, true)
			pr.Passes, pr.Gap, pr.Files, pr.Bytes = m.Catchup, g.Seconds(), p.Files, p.Bytes
			pr.Seconds, pr.Low, pr.High = p.Total.Seconds(), p.Low.Seconds(), p.High.Seconds()
			pr.Dominant, pr.Explain, pr.Prediction = p.Dominant, p.Explain(), &p
		}
		pr.Verify, pr.VerifyNote = predictVerify(h)
		w.Datasets = append(w.Datasets, pr)
	}
	mid, lo, hi := make([]time.Duration, len(hs)), make([]time.Duration, len(hs)), make([]time.Duration, len(hs))
	after := make([][]int, len(hs))
	for i, d := range w.Datasets {
		mid[i], lo[i], hi[i], after[i] = seconds(d.Seconds), seconds(d.Low), seconds(d.High), hs[i].After
	}
	w.Seconds = estimate.Makespan(mid, after, w.Parallel).Seconds()
	w.Low = estimate.Makespan(lo, after, w.Parallel).Seconds()
	w.High = estimate.Makespan(hi, after, w.Parallel).Seconds()
	w.Terms = []Term{{Name: "final pass", Seconds: w.Seconds, Low: w.Low, High: w.High}}
	if v, ok := w.verifyTerm(after); ok {
		w.Terms = append(w.Terms, v)
	}
	w.sum()
	return w, nil
}

// predictVerify predicts h's verification after the final pass from the
// speed of the last one (bytes hashed per second, both sides at once) and
// the source's size now (probed, else as the last pass found it).
func predictVerify(h History) (*Term, string) {
	v := h.Verify
	if v == nil || v.Duration <= 0 {
		return nil, "no verify run yet: run msync verify once after a catch-up to learn its speed"
	}
	var entries, size float64
	if h.Probe != nil {
		entries, size = float64(h.Probe.Entries), float64(h.Probe.SrcBytes)
	} else {
		for i := len(h.Passes) - 1; i >= 0; i-- {
			if h.Passes[i].OK && !h.Passes[i].DryRun {
				entries, size = float64(h.Passes[i].Stats.Entries), float64(h.Passes[i].Stats.SrcBytes)
				break
			}
		}
	}
	note := fmt.Sprintf("last verify hashed %.1f MiB in %s", float64(v.Bytes)/(1<<20), v.Duration.Round(time.Millisecond))
	mid, lo, hi := estimate.Verify(v, entries, size)
	return &Term{Name: "verify", Seconds: mid.Seconds(), Low: lo.Seconds(), High: hi.Seconds(), Note: note}, ""
}

// verifyTerm is the verification of every dataset, run as the plan runs
// them; false when a dataset has no verify record to learn from.
func (w *Window) verifyTerm(after [][]int) (Term, bool) {
	n := len(w.Datasets)
	mid, lo, hi := make([]time.Duration, n), make([]time.Duration, n), make([]time.Duration, n)
	for i, d := range w.Datasets {
		if d.Verify == nil {
			return Term{}, false
		}
		mid[i], lo[i], hi[i] = seconds(d.Verify.Seconds), seconds(d.Verify.Low), seconds(d.Verify.High)
	}
	t := Term{Name: "verify", Seconds: estimate.Makespan(mid, after, w.Parallel).Seconds(),
		Low: estimate.Makespan(lo, after, w.Parallel).Seconds(), High: estimate.Makespan(hi, after, w.Parallel).Seconds()}
	if n == 1 {
		t.Note = w.Datasets[0].Verify.Note
	}
	return t, n > 0
}

// AddSteps adds a plan's fixed [window] steps (exact: no range).
func (w *Window) AddSteps(steps []plan.Step) {
	for _, s := range steps {
		w.Terms = append(w.Terms, Term{Name: s.Name, Seconds: s.Duration.Seconds(), Low: s.Duration.Seconds(), High: s.Duration.Seconds(), Note: "fixed step of the plan"})
	}
	w.sum()
}

// HasVerify reports whether the verification is one of the terms.
func (w *Window) HasVerify() bool {
	for _, t := range w.Terms {
		if t.Name == "verify" {
			return true
		}
	}
	return false
}

func (w *Window) sum() {
	w.Downtime = Term{Name: "downtime"}
	for _, t := range w.Terms {
		w.Downtime.Seconds += t.Seconds
		w.Downtime.Low += t.Low
		w.Downtime.High += t.High
	}
	if !w.HasVerify() {
		w.Downtime.Note = "without verify: no verify record to learn its speed from"
	}
}

// seconds turns a count of seconds back into a duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
