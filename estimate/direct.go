package estimate

import "math"

// Direct pricing. A regression of durations on paths and bytes needs
// passes that changed different mixes of both, and a history of quiet
// catch-ups has none: the initial copy is then the only pass that changed
// anything, and one pass cannot tell a path's cost from a byte's. So each
// pass measures the split itself (record.PhaseTimes.Work and Copy: the
// workers' time on files, and the part of it moving bytes), the end of the
// pass (deletions, links, directory metadata) and the commit (the
// writeback of the bytes written) apart; a pass's time
// beyond its fixed scan cost is then divided among its bytes, its deleted
// paths and its other changed paths, and each price is the sum of its
// share over the passes divided by the sum of its count.

// deletePrior is what deleting a path costs against writing one, until a
// pass that deleted measured it: in `msync bench estimate-check`'s bursty
// scenario a deletion took 46 µs of the end of the pass against 81 µs for
// each path of the initial copy. A prediction's range takes it anywhere
// from half to twice this.
const deletePrior = 0.5

// initialLow is how far below its prices a change may cost when they come
// from the initial copy alone: a whole tree written at once runs unlike a
// catch-up, and on a file system that has just had large trees deleted
// (ext4 then searches for inodes to reuse) the initial copy paid up to
// eight times a catch-up's price for a path.
const initialLow = 0.5

// PassNoise is how much one pass's time sways from one run to the next
// with the same work (page cache, the machine's other load): the medians
// and ranges of `msync bench run`'s three runs in bench/RESULTS.md differ
// by up to a fifth. A prediction's range is at least this wide: from
// (1-PassNoise) to 1/(1-PassNoise) times the prediction.
const PassNoise = 0.2

// metaBlock is what the commit's writeback of one path written costs, in
// bytes streamed: its inode, directory entry and journal are small writes
// in scattered places, each costing the disk about what streaming 16 KiB
// does. Measured on the bench VM by solving the commits of an initial copy
// and of a final pass for the two costs: 7 KiB at scale 0.1, 20 KiB at 0.3.
const metaBlock = 16 << 10

// minPricedPaths is how many changed paths the catch-ups must have seen
// for their prices alone to be used; below it the initial copy joins them.
const minPricedPaths = 100

// measuredFixed sets the fixed cost from what the catch-ups measured of
// it, when they all did: a regression cannot tell it from the cost of
// changes when every catch-up changed about the same mix (its intercept
// then swung from 82 to 248 ms in three runs of one scenario, against 130
// ms measured). A pass's fixed part is its merge's own time (Point.Merge)
// and what follows the merge whatever changed: the end of the manifest
// writer and the record, and the commit of a pass that wrote nothing (the
// quiet catch-ups' commit, or else the intercept of the commits against
// what they wrote back). The merge's own
// time also grows with the changes it handles (directories made,
// metadata set): with catch-ups of different sizes, the fixed cost is
// the intercept of that growth, and the rest is priced per path.
func (m *Model) measuredFixed(cu []Point, weights []float64) {
	files := make([]float64, len(cu))
	fixed := make([]float64, len(cu))
	written := make([]float64, len(cu))
	commits := make([]float64, len(cu))
	var commit, quiet float64
	for i, p := range cu {
		if p.Merge <= 0 {
			return
		}
		written[i] = p.Bytes + metaBlock*(p.Files-p.Deleted)
		commits[i] = p.Commit.Seconds() * safeRatio(m.Entries, p.Entries)
		if p.Files == 0 && p.Bytes == 0 {
			commit += weights[i] * commits[i]
			quiet += weights[i]
		}
	}
	if quiet > 0 {
		commit /= quiet
	} else if a, b := lineFit(written, commits, weights); a > 0 && b > 0 {
		commit = b // no quiet catch-up: the commit's part that writes nothing back
	}
	for i, p := range cu {
		after := (p.Duration - p.Recheck - p.Transfer - p.Finish - p.Commit).Seconds()
		files[i] = p.Files
		fixed[i] = ((p.Merge).Seconds()+math.Max(0, after))*safeRatio(m.Entries, p.Entries) + commit
	}
	a, b := lineFit(files, fixed, weights)
	if a <= 0 || b <= 0 {
		var sum, n float64
		for i := range cu {
			sum += weights[i] * fixed[i]
			n += weights[i]
		}
		b = sum / n
	}
	m.Fixed, m.FixedMeasured = secs(b), true
}

// split divides a pass's time beyond its fixed cost among its bytes, its
// deletions and its other paths; ok is false when the pass did not
// measure its split or changed nothing.
func (m *Model) split(p Point) (vBytes, vDel, vPaths float64, ok bool) {
	if p.Files <= 0 || p.Work <= 0 && p.Merge <= 0 {
		return 0, 0, 0, false // changed nothing, or recorded before the split
	}
	fixed := m.Fixed.Seconds() * safeRatio(p.Entries, m.Entries)
	v := (p.Duration - p.Recheck).Seconds() - fixed
	if v <= 0 {
		return 0, 0, 0, false
	}
	switch {
	case p.Files <= p.Deleted:
		vDel = v // deleted only: nothing else to price
	case p.Deleted > 0:
		vDel = math.Min(v, p.Unlink.Seconds())
	}
	rest := v - vDel
	if p.Bytes > 0 && p.Work > 0 {
		// The workers run side by side, beside the scans: their share of
		// the wall time is the transfer's beyond the fixed cost, split as
		// their own time was. The commit is the writeback of what they
		// wrote: the bytes, and a block of metadata for each path.
		transfer := math.Max(0, p.Transfer.Seconds()-fixed)
		vBytes = math.Min(rest, transfer) * math.Min(1, p.Copy.Seconds()/p.Work.Seconds())
		written := p.Bytes + metaBlock*(p.Files-p.Deleted)
		vBytes = math.Min(rest, vBytes+p.Commit.Seconds()*p.Bytes/written)
	}
	return vBytes, vDel, rest - vBytes, true
}

// direct sets the model's prices from the passes' own splits: the
// catch-ups', and the initial copy's too when the catch-ups changed fewer
// than minPricedPaths paths. It leaves the model as it is when no pass
// measured its split.
func (m *Model) direct(cu []Point, initial *Point, weights []float64) {
	var sumB, sumD, sumP, nB, nD, nP, changed, deleted float64
	add := func(p Point, w float64) {
		vb, vd, vp, ok := m.split(p)
		if !ok {
			return
		}
		sumB, sumD, sumP = sumB+w*vb, sumD+w*vd, sumP+w*vp
		nD, nP = nD+w*p.Deleted, nP+w*(p.Files-p.Deleted)
		if p.Work > 0 {
			nB += w * p.Bytes // (a pass whose copies all failed priced no byte)
		}
	}
	for i, p := range cu {
		add(p, weights[i])
		changed += p.Files
		deleted += p.Deleted
	}
	fromInitial := false
	if changed < minPricedPaths && initial != nil {
		before := nP
		add(*initial, 1)
		fromInitial = nP-before > nP/2 // the initial copy priced most paths
	}
	if nP <= 0 {
		return
	}
	m.Direct, m.Split, m.FromInitial = true, false, fromInitial
	m.PerFile = secs(sumP / nP)
	m.PerByte = 0
	if nB > 0 {
		m.PerByte = sumB / nB
	}
	m.PerDelete, m.DeleteMeasured = secs(deletePrior*m.PerFile.Seconds()), false
	if nD > 0 {
		m.PerDelete, m.DeleteMeasured = secs(sumD/nD), true
	}
	if changed > 0 {
		m.DeletedShare = deleted / changed
	}
}

// pathCost prices files changed paths of which deleted were deletions.
func (m *Model) pathCost(files, deleted float64) float64 {
	if !m.Direct {
		return m.PerFile.Seconds() * files
	}
	deleted = math.Min(deleted, files)
	return m.PerFile.Seconds()*(files-deleted) + m.PerDelete.Seconds()*deleted
}

// noiseRange widens [lo, hi] around mid to at least PassNoise.
func noiseRange(mid, lo, hi float64) (float64, float64) {
	return math.Min(lo, mid*(1-PassNoise)), math.Max(hi, mid/(1-PassNoise))
}
