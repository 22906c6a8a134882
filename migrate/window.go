package migrate

import (
	"fmt"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/estimate"
	"github.com/msync/msync/sync/state"
)

// History is what the window estimate needs of one dataset: its passes
// and the datasets it starts after (plan order).
type History struct {
	Name, Class string
	Passes      []record.Pass
	After       []int
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
}

// Window is the estimate of a whole final pass.
type Window struct {
	Datasets []Prediction `json:"datasets"`
	Seconds  float64      `json:"seconds"`
	Low      float64      `json:"low_seconds"`
	High     float64      `json:"high_seconds"`
	Parallel int          `json:"parallel"`
	At       *time.Time   `json:"at,omitempty"`
}

// EstimateWindow predicts the final pass of every history after gap (or,
// with at set, after the time from each dataset's last pass to at), run
// parallel at a time in plan order. A dataset without a prediction counts
// as taking no time and carries its Error.
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
		m, err := estimate.Fit(estimate.Points(h.Passes))
		if err != nil {
			pr.Error = err.Error()
		} else {
			p := m.Predict(g, 0, true)
			pr.Passes, pr.Gap, pr.Files, pr.Bytes = m.Catchup, g.Seconds(), p.Files, p.Bytes
			pr.Seconds, pr.Low, pr.High = p.Total.Seconds(), p.Low.Seconds(), p.High.Seconds()
			pr.Dominant, pr.Explain, pr.Prediction = p.Dominant, p.Explain(), &p
		}
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
	return w, nil
}

// seconds turns a count of seconds back into a duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
