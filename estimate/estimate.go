// Package estimate predicts how long a final pass will take from the
// history of a dataset's passes (DESIGN.md, key idea 8):
//
//	final = fixed(entries) + changed files x per-file cost + changed bytes / throughput + re-check
//
// where the changes expected after a gap are fitted from the catch-up
// passes against the time between them, and the costs from their
// durations. It is pure: records in, a prediction out.
package estimate

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/msync/msync/record"
)

// Point is what one pass contributes to the fit.
type Point struct {
	Gap      time.Duration // since the previous pass ended
	Entries  float64       // source entries scanned
	Files    float64       // changed paths (created, updated, metadata, deleted, links)
	Bytes    float64       // file bytes copied
	SrcBytes float64       // sum of source file sizes
	Duration time.Duration
	Recheck  time.Duration // final passes: the source re-scan
	Kind     string
	// What the direct pricing uses (zero in passes recorded before they
	// were measured): deleted paths, the wall time until the last file
	// was written and of the end of the pass (deletions, links, directory
	// metadata) and of the commit (DST synced: the writeback of the
	// pass's bytes), and the workers' time on files and moving bytes.
	Deleted                  float64
	Transfer, Finish, Commit time.Duration
	Work, Copy               time.Duration
	// Merge is the pass's time not waiting for its workers or its
	// manifest writer: its fixed cost, measured; Unlink the part of
	// Finish spent deleting.
	Merge, Unlink time.Duration
}

// FromPass extracts a point from a pass record.
func FromPass(p *record.Pass) Point {
	return Point{
		Gap:      time.Duration(p.GapSeconds * float64(time.Second)),
		Entries:  float64(p.Stats.Entries),
		Files:    float64(p.Changed()),
		Bytes:    float64(p.Stats.DataBytes),
		SrcBytes: float64(p.Stats.SrcBytes),
		Duration: p.Duration,
		Recheck:  p.Phases.Recheck,
		Kind:     p.Kind,
		Deleted:  float64(p.Stats.Deleted),
		Transfer: p.Phases.Transfer,
		Finish:   p.Phases.Delete,
		Commit:   p.Phases.Commit,
		Work:     p.Phases.Work,
		Copy:     p.Phases.Copy,
		Merge:    p.Phases.Merge,
		Unlink:   p.Phases.Unlink,
	}
}

// Points returns the usable points of a history: completed, not dry runs.
func Points(ps []record.Pass) []Point {
	var out []Point
	for i := range ps {
		if !ps[i].OK || ps[i].DryRun {
			continue
		}
		out = append(out, FromPass(&ps[i]))
	}
	return out
}

// Model is a fitted dataset.
type Model struct {
	// Change per second of gap, and what changes regardless of the gap
	// (files rewritten on every pass).
	FilesPerSec, FilesBase float64
	BytesPerSec, BytesBase float64
	// Cost of a pass: Fixed at Entries entries, plus per file and per byte.
	Fixed   time.Duration
	Entries float64
	// FixedMeasured: Fixed is the catch-ups' measured fixed cost
	// (Point.Merge), not the regression's intercept.
	FixedMeasured bool
	PerFile       time.Duration
	PerByte       float64 // seconds per byte
	Recheck       time.Duration
	Measured      bool // Recheck comes from a final pass (else estimated)
	// Spread is the relative uncertainty of a prediction (at least 10%);
	// CostSpread that of the cost of known changes alone (a probe's).
	Spread     float64
	CostSpread float64
	Catchup    int // catch-up passes the fit used
	// Split: the costs per path and per byte come from the initial copy
	// alone (the catch-ups found nothing), SplitCost seconds for
	// SplitFiles paths and SplitBytes bytes, shared half and half.
	Split                  bool
	SplitCost              float64
	SplitFiles, SplitBytes float64
	// Direct: PerFile, PerByte and PerDelete were measured (direct.go),
	// from the passes' own split of their time; PerFile then prices the
	// paths a pass writes or touches, PerDelete those it deletes.
	// DeleteMeasured: PerDelete comes from passes that deleted (else it
	// is deletePrior of PerFile). DeletedShare is the part of the changed
	// paths the catch-ups deleted, for predictions from history.
	Direct         bool
	FromInitial    bool // the catch-ups changed nothing: priced by the initial copy
	PerDelete      time.Duration
	DeleteMeasured bool
	DeletedShare   float64
	// A pass never changes more than the whole tree: predictions are capped
	// at the last pass's entries and source bytes.
	MaxFiles, MaxBytes float64
	// LongestGap is the longest gap the fit saw.
	LongestGap time.Duration
}

// ErrTooFew is returned before there are catch-up passes to fit.
var ErrTooFew = errors.New("no catch-up pass yet: run msync catchup (twice or more, at gaps like the final one) first")

// Fit fits a model to the points of one dataset.
func Fit(pts []Point) (*Model, error) {
	var cu []Point
	var initial *Point
	var recheck []Point
	for i := range pts {
		p := pts[i]
		switch {
		case p.Kind == "initial":
			initial = &pts[i]
		case p.Gap > 0:
			cu = append(cu, p)
		}
		if p.Recheck > 0 {
			recheck = append(recheck, p)
		}
	}
	if len(cu) == 0 {
		return nil, ErrTooFew
	}
	m := &Model{Catchup: len(cu)}
	// Change volume against the gap.
	gaps := make([]float64, len(cu))
	files := make([]float64, len(cu))
	bytes := make([]float64, len(cu))
	for i, p := range cu {
		gaps[i], files[i], bytes[i] = p.Gap.Seconds(), p.Files, p.Bytes
		m.Entries += p.Entries / float64(len(cu))
	}
	// Recent passes weigh more (half weight three passes back): the final
	// pass comes after them, on the system as it is now (caches warm, the
	// initial copy's after-effects gone, queues at their usual size).
	weights := make([]float64, len(cu))
	for i := range cu {
		weights[i] = math.Pow(0.79, float64(len(cu)-1-i))
	}
	last := cu[len(cu)-1]
	m.MaxFiles, m.MaxBytes = last.Entries, last.SrcBytes
	for _, p := range cu {
		m.LongestGap = max(m.LongestGap, p.Gap)
	}
	m.FilesPerSec, m.FilesBase = lineFit(gaps, files, weights)
	m.BytesPerSec, m.BytesBase = lineFit(gaps, bytes, weights)

	// Cost: duration = fixed + perFile*files + perByte*bytes, non-negative.
	// Too few catch-ups, or catch-ups that found nothing, say little of
	// the cost per path and per byte: the initial copy says it.
	quiet := true
	for _, p := range cu {
		quiet = quiet && p.Files == 0 && p.Bytes == 0
	}
	fit := cu
	if (len(cu) < 3 || quiet) && initial != nil {
		fit = append(append([]Point(nil), cu...), *initial)
	}
	rows := make([][3]float64, len(fit))
	ys := make([]float64, len(fit))
	for i, p := range fit {
		w := 1.0
		if i < len(cu) {
			w = math.Sqrt(weights[i])
		}
		rows[i] = [3]float64{w, w * p.Files, w * p.Bytes}
		ys[i] = w * (p.Duration - p.Recheck).Seconds()
	}
	c := nnls3(rows, ys)
	m.Fixed = secs(c[0])
	m.PerFile = secs(c[1])
	m.PerByte = c[2]
	m.measuredFixed(cu, weights)
	if quiet && initial != nil && initial.Files > 0 {
		// The initial copy alone tells what a change costs, and cannot
		// tell a path's cost from a byte's: half each, and a prediction's
		// range spans all of it either way (Split).
		v := math.Max(0, (initial.Duration-initial.Recheck).Seconds()-m.Fixed.Seconds()*safeRatio(initial.Entries, m.Entries))
		m.Split, m.SplitCost, m.SplitFiles, m.SplitBytes = true, v, initial.Files, initial.Bytes
		m.PerFile, m.PerByte = secs(v/initial.Files), 0
		if initial.Bytes > 0 {
			m.PerFile, m.PerByte = secs(v/2/initial.Files), v/2/initial.Bytes
		}
	}

	m.direct(cu, initial, weights)

	if len(recheck) > 0 {
		var sum float64
		for _, p := range recheck {
			sum += p.Recheck.Seconds() * safeRatio(m.Entries, p.Entries)
		}
		m.Recheck, m.Measured = secs(sum/float64(len(recheck))), true
	} else {
		// One side re-scanned, against two scanned in every pass.
		m.Recheck = m.Fixed / 2
	}

	// Spread: how well the fit explains the passes it saw, change volume
	// and cost together.
	var ss, cs float64
	for _, p := range cu {
		pred := m.cost(m.Entries, p.Files, p.Deleted, p.Bytes)
		if pred > 0 {
			r := ((p.Duration - p.Recheck).Seconds() - pred) / pred
			ss += r * r
			cs += r * r
		}
		pf := m.FilesBase + m.FilesPerSec*p.Gap.Seconds()
		if pf > 0 && p.Files > 0 {
			pc := m.cost(m.Entries, pf, pf*m.DeletedShare, m.BytesBase+m.BytesPerSec*p.Gap.Seconds())
			r := ((p.Duration - p.Recheck).Seconds() - pc) / pc
			ss += r * r
		}
	}
	m.Spread = math.Max(0.10, 2*math.Sqrt(ss/float64(2*len(cu))))
	m.CostSpread = math.Max(0.10, 2*math.Sqrt(cs/float64(len(cu))))
	if len(cu) < 3 {
		m.CostSpread = math.Max(m.CostSpread, 0.25)
	}
	if len(cu) < 3 {
		m.Spread = math.Max(m.Spread, 0.5) // too little history to be sure
	}
	return m, nil
}

func (m *Model) cost(entries, files, deleted, bytes float64) float64 {
	return m.Fixed.Seconds()*safeRatio(entries, m.Entries) + m.pathCost(files, deleted) + m.PerByte*bytes
}

// Prediction is the expected duration of a pass after a gap.
type Prediction struct {
	Gap          time.Duration
	Files, Bytes float64 // expected changes
	Deleted      float64 // of Files, the deletions
	Scan         time.Duration
	FileCost     time.Duration
	ByteCost     time.Duration
	Recheck      time.Duration // final passes
	Total        time.Duration
	Low, High    time.Duration
	Dominant     string // "scan", "files" or "bytes"
	// Extrapolated is how many times the longest gap seen this gap is,
	// when it is more than twice that (the fit is linear; real change
	// rates flatten as the same files change again).
	Extrapolated float64
	Capped       bool // the change volume hit the size of the tree
	// Probed: Files and Bytes were measured (PredictMeasured), plus
	// GrowthFiles and GrowthBytes expected during Gap.
	Probed                   bool
	GrowthFiles, GrowthBytes float64
}

// Predict returns the expected duration of a pass after gap, at entries
// source entries (0: as in the history); final adds the re-check.
func (m *Model) Predict(gap time.Duration, entries float64, final bool) Prediction {
	if entries <= 0 {
		entries = m.Entries
	}
	p := Prediction{Gap: gap}
	p.Files = math.Max(0, m.FilesBase+m.FilesPerSec*gap.Seconds())
	p.Bytes = math.Max(0, m.BytesBase+m.BytesPerSec*gap.Seconds())
	if m.MaxFiles > 0 && p.Files > m.MaxFiles {
		p.Files, p.Capped = m.MaxFiles, true
	}
	if m.MaxBytes > 0 && p.Bytes > m.MaxBytes {
		p.Bytes, p.Capped = m.MaxBytes, true
	}
	p.Deleted = p.Files * m.DeletedShare
	if m.LongestGap > 0 && gap > 2*m.LongestGap {
		p.Extrapolated = gap.Seconds() / m.LongestGap.Seconds()
	}
	m.price(&p, entries, final)
	t := p.Total.Seconds()
	lo, hi := noiseRange(t, t*(1-m.Spread), t*(1+m.Spread))
	p.Low, p.High = secs(max(0, lo)), secs(hi)
	return p
}

// price fills in the costs of p's changes at entries source entries, its
// total and what dominates it.
func (m *Model) price(p *Prediction, entries float64, final bool) {
	p.Scan = secs(m.Fixed.Seconds() * safeRatio(entries, m.Entries))
	p.FileCost = secs(m.pathCost(p.Files, p.Deleted))
	p.ByteCost = secs(m.PerByte * p.Bytes)
	if final {
		p.Recheck = secs(m.Recheck.Seconds() * safeRatio(entries, m.Entries))
	}
	p.Total = p.Scan + p.FileCost + p.ByteCost + p.Recheck
	p.Dominant = "scan"
	if p.FileCost > p.Scan+p.Recheck && p.FileCost >= p.ByteCost {
		p.Dominant = "files"
	} else if p.ByteCost > p.Scan+p.Recheck && p.ByteCost > p.FileCost {
		p.Dominant = "bytes"
	}
}

// splitNoise is the timing noise allowed on a cost learned from one pass
// (the initial copy): the page cache and the machine's load sway it (by a
// quarter from one pass to the next on a shared 2-core machine).
const splitNoise = 0.25

// Measured is the work a probe found pending now (the source scanned
// against the last committed manifest).
type Measured struct {
	Files   float64 // pending changed paths
	Deleted float64 // of Files, the deletions
	Bytes   float64 // whole sizes of the files a pass would copy
	Entries float64 // source entries now
	// Scan is what the probe's scan of the source took: the re-check of a
	// final pass is one more such scan (used until a final pass measured it).
	Scan time.Duration
}

// PredictMeasured predicts a pass that finds the measured work plus what
// changes during growth more (at the fitted rates: the time from the probe
// to the stop); final adds the re-check. The measured part's range is the
// cost fit's spread (CostSpread); the growth part's is nothing to twice
// the expected, as change comes in bursts.
func (m *Model) PredictMeasured(w Measured, growth time.Duration, final bool) Prediction {
	if growth < 0 {
		growth = 0
	}
	p := Prediction{Gap: growth, Probed: true}
	p.GrowthFiles = m.FilesPerSec * growth.Seconds()
	p.GrowthBytes = m.BytesPerSec * growth.Seconds()
	p.Files, p.Bytes = w.Files+p.GrowthFiles, w.Bytes+p.GrowthBytes
	// The growth is capped at the whole tree changing, as in Predict.
	if limit := max(m.MaxFiles, w.Entries, w.Files); m.MaxFiles > 0 && p.Files > limit {
		p.Files, p.GrowthFiles, p.Capped = limit, limit-w.Files, true
	}
	if limit := max(m.MaxBytes, w.Bytes); m.MaxBytes > 0 && p.Bytes > limit {
		p.Bytes, p.GrowthBytes, p.Capped = limit, limit-w.Bytes, true
	}
	p.Deleted = math.Min(p.Files, w.Deleted+p.GrowthFiles*m.DeletedShare)
	if m.LongestGap > 0 && growth > 2*m.LongestGap && p.GrowthFiles+p.GrowthBytes > 0 {
		p.Extrapolated = growth.Seconds() / m.LongestGap.Seconds()
	}
	m.price(&p, w.Entries, final)
	if final && !m.Measured && w.Scan > 0 {
		p.Total += w.Scan - p.Recheck
		p.Recheck = w.Scan
	}
	g := secs(m.pathCost(p.GrowthFiles, p.GrowthFiles*m.DeletedShare) + m.PerByte*p.GrowthBytes)
	measured := (p.Total - g).Seconds()
	lo, hi := noiseRange(measured, measured*max(0, 1-m.CostSpread), measured*(1+m.CostSpread))
	if m.Direct && m.FromInitial {
		// Priced by the initial copy alone: the changes may cost half.
		change := m.pathCost(w.Files, w.Deleted) + m.PerByte*w.Bytes
		lo = min(lo, measured-change*(1-initialLow))
	}
	if m.Direct && !m.DeleteMeasured {
		// What a deletion costs is a guess (deletePrior): from half to
		// twice it.
		d := m.PerDelete.Seconds() * math.Min(w.Deleted, w.Files)
		lo, hi = lo-d/2, hi+d
	}
	if m.Split {
		// All of the initial copy's cost per path, or all of it per byte;
		// the spread of the quiet catch-ups applies to their fixed cost.
		vary := m.PerFile.Seconds()*w.Files + m.PerByte*w.Bytes
		base := measured - vary
		vf, vb := m.SplitCost*w.Files/m.SplitFiles, m.SplitCost*w.Files/m.SplitFiles
		if m.SplitBytes > 0 {
			vb = m.SplitCost * w.Bytes / m.SplitBytes
		}
		lo = base*max(0, 1-m.CostSpread) + min(vf, vb)*(1-splitNoise)
		hi = base*(1+m.CostSpread) + max(vf, vb)*(1+splitNoise)
		lo, hi = noiseRange(measured, lo, hi)
	}
	p.Low = secs(max(0, lo))
	p.High = secs(hi + 2*g.Seconds())
	return p
}

// Explain says in words what dominates a prediction.
func (p Prediction) Explain() string {
	var s string
	switch p.Dominant {
	case "files":
		s = fmt.Sprintf("many small files: %.0f changed paths cost %s", p.Files, p.FileCost.Round(time.Millisecond))
	case "bytes":
		s = fmt.Sprintf("bytes: %.1f MiB to copy cost %s", p.Bytes/(1<<20), p.ByteCost.Round(time.Millisecond))
	default:
		s = fmt.Sprintf("scanning: walking both trees costs %s whatever changed", (p.Scan + p.Recheck).Round(time.Millisecond))
	}
	if p.Capped {
		s += "; capped at the whole tree changing"
	}
	if p.Probed {
		s += fmt.Sprintf("; measured now, plus %.0f paths expected until the stop", p.GrowthFiles)
	}
	if p.Extrapolated > 0 {
		s += fmt.Sprintf("; extrapolated to %.0fx the longest gap seen: run a catch-up at such a gap to know", p.Extrapolated)
	}
	return s
}

// lineFit fits y = a*x + b with a, b >= 0 (weighted least squares): the
// full line when both come out non-negative, else the better of a line
// through the origin and a flat mean.
func lineFit(xs, ys, ws []float64) (a, b float64) {
	var n, sx, sy, sxx, sxy float64
	for i := range xs {
		w := 1.0
		if ws != nil {
			w = ws[i]
		}
		n += w
		sx += w * xs[i]
		sy += w * ys[i]
		sxx += w * xs[i] * xs[i]
		sxy += w * xs[i] * ys[i]
	}
	if den := n*sxx - sx*sx; len(xs) >= 2 && den > 1e-9*n*sxx {
		a = (n*sxy - sx*sy) / den
		b = (sy - a*sx) / n
		if a >= 0 && b >= 0 {
			return a, b
		}
	}
	sse := func(a, b float64) float64 {
		var e float64
		for i := range xs {
			w := 1.0
			if ws != nil {
				w = ws[i]
			}
			d := ys[i] - (a*xs[i] + b)
			e += w * d * d
		}
		return e
	}
	a, b = 0, math.Max(0, sy/n)
	if sxx > 0 && sxy > 0 {
		if o := sxy / sxx; sse(o, 0) <= sse(a, b) {
			return o, 0
		}
	}
	return a, b
}

// nnls3 solves min |X c - y| with c >= 0 for three unknowns by trying
// every set of free variables (eight least-squares problems).
func nnls3(rows [][3]float64, ys []float64) [3]float64 {
	best, bestErr := [3]float64{}, math.Inf(1)
	for mask := 1; mask < 8; mask++ {
		var idx []int
		for k := 0; k < 3; k++ {
			if mask&(1<<k) != 0 {
				idx = append(idx, k)
			}
		}
		c, ok := lsq(rows, ys, idx)
		if !ok {
			continue
		}
		neg := false
		for _, v := range c {
			if v < 0 {
				neg = true
			}
		}
		if neg {
			continue
		}
		var e float64
		for i, r := range rows {
			d := ys[i] - (c[0]*r[0] + c[1]*r[1] + c[2]*r[2])
			e += d * d
		}
		// Prefer fewer variables when the fit is as good (collinear passes).
		e *= 1 + 1e-6*float64(len(idx))
		if e < bestErr {
			best, bestErr = c, e
		}
	}
	return best
}

// lsq solves the normal equations for the columns idx (ridge-damped so
// that collinear columns still give an answer); ok is false when singular.
func lsq(rows [][3]float64, ys []float64, idx []int) ([3]float64, bool) {
	k := len(idx)
	a := make([][]float64, k)
	b := make([]float64, k)
	for i := range a {
		a[i] = make([]float64, k)
	}
	for r, row := range rows {
		for i, ci := range idx {
			b[i] += row[ci] * ys[r]
			for j, cj := range idx {
				a[i][j] += row[ci] * row[cj]
			}
		}
	}
	for i := range a {
		a[i][i] *= 1 + 1e-9
	}
	// Gaussian elimination with partial pivoting.
	for col := 0; col < k; col++ {
		piv := col
		for r := col + 1; r < k; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		if math.Abs(a[piv][col]) < 1e-300 {
			return [3]float64{}, false
		}
		a[col], a[piv] = a[piv], a[col]
		b[col], b[piv] = b[piv], b[col]
		for r := col + 1; r < k; r++ {
			f := a[r][col] / a[col][col]
			for c := col; c < k; c++ {
				a[r][c] -= f * a[col][c]
			}
			b[r] -= f * b[col]
		}
	}
	x := make([]float64, k)
	for r := k - 1; r >= 0; r-- {
		s := b[r]
		for c := r + 1; c < k; c++ {
			s -= a[r][c] * x[c]
		}
		x[r] = s / a[r][r]
	}
	var out [3]float64
	for i, ci := range idx {
		if math.IsNaN(x[i]) || math.IsInf(x[i], 0) {
			return out, false
		}
		out[ci] = x[i]
	}
	return out, true
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func safeRatio(a, b float64) float64 {
	if b <= 0 || a <= 0 {
		return 1
	}
	return a / b
}

// Makespan is how long datasets of the given durations take when run
// workers at a time in order (a plan's datasets), each starting after the
// ones listed in after[i].
func Makespan(durations []time.Duration, after [][]int, workers int) time.Duration {
	if workers < 1 {
		workers = 1
	}
	finish := make([]time.Duration, len(durations))
	slots := make([]time.Duration, workers)
	for i, d := range durations {
		sort.Slice(slots, func(a, b int) bool { return slots[a] < slots[b] })
		start := slots[0]
		for _, j := range after[i] {
			if j < i && finish[j] > start {
				start = finish[j]
			}
		}
		finish[i] = start + d
		slots[0] = finish[i]
	}
	var end time.Duration
	for _, f := range finish {
		end = max(end, f)
	}
	return end
}
