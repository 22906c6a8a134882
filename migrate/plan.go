package migrate

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/plan"
	"github.com/msync/msync/sync/class"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/verify"
)

// Exit codes scripts can rely on: what a pass, a verification or a plan
// of them comes to.
const (
	ExitOK       = 0
	ExitDiffer   = 1  // verify found differences
	ExitFatal    = 2  // usage or fatal error
	ExitPartial  = 23 // some files failed, the others were done
	ExitVanished = 24 // source files vanished or changed during the pass
)

// PassCode is the exit code a pass's result earns.
func PassCode(res *record.Result, final bool) int {
	code := ExitOK
	switch {
	case res.Stats.Failed > 0:
		code = ExitPartial
	case res.Stats.Vanished > 0:
		code = ExitVanished
	}
	if final && len(res.NotQuiet) > 0 && code == ExitOK {
		code = ExitVanished
	}
	return code
}

// Worst combines exit codes: a fatal error outranks failed files, which
// outrank a source that moved, which outranks differences.
func Worst(a, b int) int {
	rank := map[int]int{ExitOK: 0, ExitDiffer: 1, ExitVanished: 2, ExitPartial: 3, ExitFatal: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// Schedule runs fn for each dataset, at most workers at a time, each after
// the datasets plan.After names for it.
func Schedule(ctx context.Context, ds []*plan.Dataset, workers int, fn func(i int)) {
	done := make([]chan struct{}, len(ds))
	for i := range done {
		done[i] = make(chan struct{})
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	after := plan.After(ds)
	for i := range ds {
		deps := after[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			for _, j := range deps {
				<-done[j]
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// Ends resolves a dataset's source and dest (local paths relative to the
// plan file).
func Ends(p *plan.Plan, d *plan.Dataset) (src, dst string) {
	return p.Local(d.Source, IsRemote(d.Source)), p.Local(d.Dest, IsRemote(d.Dest))
}

// DatasetPass is what one dataset of a plan's pass came to.
type DatasetPass struct {
	Dataset  *plan.Dataset
	Src, Dst string
	State    string // state directory used ("" when on DST's host)
	Result   *record.Result
	Err      error // the pass failed as a whole
	ExitCode int
	Elapsed  time.Duration
}

// PlanHooks let the caller see a plan run: Start gives a dataset's log and
// item callback (either may be nil) before its pass; Done gets its outcome.
// Both may be called from several goroutines at once.
type PlanHooks struct {
	Start func(i int, d *plan.Dataset) (log io.Writer, onItem func(engine.Item))
	Done  func(i int, out *DatasetPass)
}

// DatasetOptions are o for dataset d of plan p: its state directory (a
// push keeps it on DST's host), its excludes and class.
func DatasetOptions(p *plan.Plan, d *plan.Dataset, o Options) Options {
	_, dst := Ends(p, d)
	o.State = p.StatePath(d)
	if IsRemote(dst) {
		o.State = "" // a push keeps its state on DST's host
	}
	o.Exclude = append(append([]string(nil), o.Exclude...), d.Exclude...)
	o.Class = d.ClassName()
	o.MaxAge = d.Age()
	o.DeleteExtraneous = o.DeleteExtraneous || d.DeleteExtraneous
	o.Counters = &engine.Counters{}
	return o
}

// RunPlan runs a pass over each dataset of ds as the plan schedules them
// and returns the outcomes, in the order of ds, and the worst exit code.
func RunPlan(ctx context.Context, p *plan.Plan, ds []*plan.Dataset, o Options, h PlanHooks) ([]DatasetPass, int) {
	outs := make([]DatasetPass, len(ds))
	Schedule(ctx, ds, p.Workers(), func(i int) {
		d := ds[i]
		do := DatasetOptions(p, d, o)
		if h.Start != nil {
			log, onItem := h.Start(i, d)
			if log != nil {
				do.Log = log
			}
			do.OnItem = onItem
		}
		out := &outs[i]
		out.Dataset = d
		out.Src, out.Dst = Ends(p, d)
		t := time.Now()
		out.Result, out.State, out.Err = Pass(ctx, out.Src, out.Dst, do)
		out.Elapsed = time.Since(t)
		if out.Err != nil {
			out.ExitCode = ExitFatal
		} else {
			out.ExitCode = PassCode(out.Result, o.Final)
		}
		if h.Done != nil {
			h.Done(i, out)
		}
	})
	code := ExitOK
	for _, out := range outs {
		code = Worst(code, out.ExitCode)
	}
	return outs, code
}

// DatasetVerify is what the verification of one dataset of a plan came to.
type DatasetVerify struct {
	Dataset   *plan.Dataset
	Src, Dst  string
	Report    *verify.Report // nil when Err
	Err       error          // the verification failed as a whole
	RecordErr error          // the outcome could not be recorded
	ExitCode  int
	Elapsed   time.Duration
}

// RunPlanVerify verifies each dataset of ds as the plan schedules them,
// records each outcome in the dataset's state directory (when on this
// host) and returns the outcomes, in the order of ds, and the worst exit
// code. What a dataset's class leaves behind on purpose is not a
// difference; a verification is for after the final pass, so exim's half
// pairs (copied by --final) are not excused.
func RunPlanVerify(ctx context.Context, p *plan.Plan, ds []*plan.Dataset, o VerifyOptions) ([]DatasetVerify, int) {
	outs := make([]DatasetVerify, len(ds))
	Schedule(ctx, ds, p.Workers(), func(i int) {
		d := ds[i]
		out := &outs[i]
		out.Dataset = d
		out.Src, out.Dst = Ends(p, d)
		rules := d.ClassName().Rules(class.Config{Final: true, MaxAge: d.Age()})
		do := o
		do.Held = func(e *manifest.Entry) string { return rules.Hold(e, "", "") }
		do.Exclude = append(append([]string(nil), o.Exclude...), d.Excludes()...)
		t := time.Now()
		out.Report, out.Err = Verify(ctx, out.Src, out.Dst, do)
		out.Elapsed = time.Since(t)
		switch {
		case out.Err != nil:
			out.Report, out.ExitCode = nil, ExitFatal
			return
		case !out.Report.Identical:
			out.ExitCode = ExitDiffer
		}
		if !IsRemote(out.Dst) {
			out.RecordErr = RecordVerify(p.StatePath(d), out.Report, t)
		}
	})
	code := ExitOK
	for _, out := range outs {
		code = Worst(code, out.ExitCode)
	}
	return outs, code
}
