package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/internal/relpath"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
)

// pass is one run of the pipeline (see the package doc): what the
// orchestrator holds, the stages, each with its own state, and what
// closes when the pass ends.
type pass struct {
	o       Options
	src     Source
	local   localTree // the source when it is on this host
	exclude *filter.Matcher
	st      *state.Dir // bound to the pair
	closers []func()   // run in reverse when the pass ends

	t     *tally   // the Result, as the stages fill it in
	plan  *planner // merge and decisions
	apply *applier // the destination's changes, the workers
	feed  *feed    // actions to manifest slots, the writer
	rec   *Recorder
	// diffTime is the time spent planning and applying in the merge.
	diffTime time.Duration
}

// Run performs one pass as o describes.
func Run(ctx context.Context, o Options) (*record.Result, error) {
	p := &pass{o: o, t: &tally{res: &record.Result{}}}
	if o.StateDir == "" {
		return nil, errors.New("no state directory given")
	}
	if o.Workers <= 0 {
		p.o.Workers = 4
		if _, local := o.Source.(localTree); o.Source != nil && !local {
			// Each worker waits on the network for its file: keep many
			// requests in flight so that no round trip stalls the pass.
			p.o.Workers = 32
		}
	}
	if o.Retries <= 0 {
		p.o.Retries = 2
	}
	if o.Log == nil {
		p.o.Log = io.Discard
	}
	ex, err := filter.New(o.Exclude)
	if err != nil {
		return nil, err
	}
	p.exclude = ex
	p.src = o.Source
	if p.src == nil {
		if err := checkPaths(o.Src, o.Dst); err != nil {
			return nil, err
		}
		l := tree.NewLocal(o.Src)
		defer l.Close()
		p.src = l
	}
	p.local, _ = p.src.(localTree)
	st, err := state.Open(o.StateDir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return p.run(ctx, st)
}

func checkPaths(src, dst string) error {
	as, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	ad, err := filepath.Abs(dst)
	if err != nil {
		return err
	}
	fi, err := os.Stat(as)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("source %s: not a directory", src)
	}
	if rs, err := filepath.EvalSymlinks(as); err == nil {
		as = rs
	}
	if rd, err := realPath(dst); err == nil {
		ad = rd
	}
	if relpath.Within(ad, as) || relpath.Within(as, ad) ||
		fsx.Within(existingAncestor(ad), as) || fsx.Within(as, ad) {
		return fmt.Errorf("source %s and destination %s overlap", src, dst)
	}
	return nil
}

// later runs f when the pass ends.
func (p *pass) later(f func()) { p.closers = append(p.closers, f) }

func (p *pass) closeAll() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

func (p *pass) xattrNS() []string {
	if p.o.Xattrs {
		return fsx.XattrNamespaces()
	}
	return nil
}

// run is the pass's data flow: inputs -> planner -> applier -> recorder.
func (p *pass) run(ctx context.Context, st *state.Dir) (*record.Result, error) {
	start := time.Now()
	var phases record.PhaseTimes
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer p.closeAll()
	p.t.stop = cancel
	res := p.t.res

	// Inputs: the destination made and locked, the last manifests, the
	// scans started. Then the stages: recorder, applier, planner.
	in, err := p.openInputs(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := p.startStages(ctx, in); err != nil {
		return nil, err
	}
	// Merge: the planner's actions are itemized, counted, applied (files
	// by the workers) and recorded (the writer follows), path by path.
	mergeErr := p.merge(ctx)
	phases.Diff, phases.Scan = p.diffTime, time.Since(start)
	phases.Merge = phases.Scan - p.apply.waited - p.feed.waited
	p.apply.wait()
	phases.Transfer = time.Since(start)
	phases.Work, phases.Copy = p.t.workTimes()
	p.scanProblems(in)
	if mergeErr == nil && ctx.Err() != nil {
		// Interrupted after the merge: transfers were cut short. Commit nothing;
		// the pending manifest tells the next pass what may be at DST.
		mergeErr = interrupted(ctx)
	}
	if mergeErr != nil {
		p.stopWriter()
		return res, mergeErr
	}
	// The end of the pass: links, deletions and directory metadata once
	// every file is in place, then the manifests are complete.
	t := time.Now()
	p.apply.finish()
	phases.Delete, phases.Unlink = time.Since(t), p.apply.unlinked
	if err := p.endWriter(ctx); err != nil {
		return res, err
	}
	// Commit: DST synced, the manifests renamed in; for a final pass, the
	// re-check of the source; then the pass record.
	t = time.Now()
	if err := p.commit(); err != nil {
		return res, err
	}
	phases.Commit = time.Since(t)
	if p.o.Final {
		t = time.Now()
		if err := p.recheck(ctx, st); err != nil {
			return res, err
		}
		phases.Recheck = time.Since(t)
	}
	return res, p.rec.Record(res, p.passInfo(start, phases))
}

// startStages sets the stages up over the inputs: the recorder and its
// writer goroutine, the applier and its workers, the planner.
func (p *pass) startStages(ctx context.Context, in *inputs) error {
	o := &p.o
	p.t.res.TrustedDest = in.trusted
	p.t.log, p.t.rules, p.t.final, p.t.counters = o.Log, o.Rules, o.Final, o.Counters
	dstRoot, srcRoot, err := p.openRoots(in)
	if err != nil {
		return err
	}
	p.apply = &applier{o: o, t: p.t, src: p.src, local: p.local, srcRoot: srcRoot, dstScan: in.dstScan}
	if dstRoot != nil {
		p.apply.dst = &dest{root: dstRoot, owners: o.Owners, xattrNS: in.ns, fsync: o.Fsync, tag: in.tag}
		p.apply.dst.watchACL()
		p.apply.dirs = dstRoot.NewDirs()
		p.later(func() { p.apply.dirs.Close() })
	}
	if !o.DryRun {
		if err := p.st.Begin(); err != nil {
			return err
		}
		p.apply.journal = p.st.NewJournal(o.Fsync == FsyncFile)
		p.later(func() { p.apply.journal.Close() })
	}
	if err := p.startRecorder(in); err != nil {
		return err
	}
	p.apply.start(ctx)
	c := planConfig{rules: o.Rules, meta: metaCheck{owners: o.Owners, xattrs: o.Xattrs}, root: os.Geteuid() == 0,
		created: in.created, dryRun: o.DryRun, deleteExtraneous: o.DeleteExtraneous, deleteOnlyAsked: o.DeleteOnlyAsked,
		delta: o.Delta, counters: o.Counters}
	p.plan = newPlanner(c, in.src, in.dst, in.old, p.do)
	return nil
}

// startRecorder opens the recorder and starts the manifest writer.
func (p *pass) startRecorder(in *inputs) error {
	if p.st.Adopt() {
		// Written again in full, to record the pair.
		in.srcBase, in.dstBase = nil, nil
	}
	rec, err := openRecorder(p.st, in.srcBase, in.dstBase, p.o.DryRun)
	if err != nil {
		return err
	}
	p.later(rec.Abort)
	rec.log, rec.xattrs, rec.freshXattrs, rec.journal = p.o.Log, in.ns, in.freshXattrs, p.apply.journal
	rec.settle = append(in.interrupted[:len(in.interrupted):len(in.interrupted)], in.journals...)
	p.rec = rec
	p.feed = &feed{slots: make(chan *slot, 4096), rules: p.o.Rules, keepSrc: in.srcBase != nil, keepDst: in.dstBase != nil, oldDst: in.oldDst}
	p.feed.start(rec)
	return nil
}

// stopWriter ends the manifest writer once the feed has sent everything,
// and returns its error.
func (p *pass) stopWriter() error { return p.feed.stop() }

// endWriter ends the manifest writer after a complete merge and
// completes the Result with what the pass counted at its end.
func (p *pass) endWriter(ctx context.Context) error {
	err := p.stopWriter()
	if p.o.Rules != nil && (p.t.queueSrc > 0 || p.feed.queueDst > 0) {
		p.t.res.Queue = &record.Queue{Src: p.t.queueSrc, Dst: p.feed.queueDst}
	}
	if wc, ok := p.src.(wireCounter); ok {
		p.t.res.Stats.WireBytes = wc.WireBytes()
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return interrupted(ctx)
	}
	return nil
}

// commit syncs the destination (FsyncPass) and commits the manifests.
func (p *pass) commit() error {
	if err := p.apply.syncFS(); err != nil {
		return err
	}
	return p.rec.Commit(p.t.res)
}

// merge runs the planner over the merged streams to their end (or the
// first error), then closes every directory it is in.
func (p *pass) merge(ctx context.Context) error {
	err := p.mergeRows(ctx)
	if err == nil {
		err = p.feed.drain()
	}
	if err != nil || ctx.Err() != nil {
		p.apply.abort.Store(true)
	}
	p.plan.popTo("\x00") // pops every frame, root last
	if n := p.t.res.Stats.Held; n > maxHeldLogged {
		fmt.Fprintf(p.o.Log, "msync: and %d more left as they are by the %s rules (all in --json)\n", n-maxHeldLogged, p.o.Rules.Class())
	}
	if p.o.Counters != nil {
		p.o.Counters.ScanFinished.Store(true)
	}
	return err
}

func (p *pass) mergeRows(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		r, ok, err := p.plan.next()
		if err != nil || !ok {
			return err
		}
		t0 := time.Now()
		p.plan.popTo(r.path)
		if err := p.feed.at(r.path, r.m, r.d); err != nil {
			return err
		}
		p.apply.see(r.s, r.d)
		p.plan.step(r.s, r.d, r.m)
		p.feed.done()
		p.diffTime += time.Since(t0)
		p.plan.done(r)
	}
}

// do is the planner's sink: each action is itemized, counted, applied and
// recorded, in this order.
func (p *pass) do(a *action) {
	if p.o.OnItem != nil {
		if it, ok := itemize(p.plan.c.meta, a); ok {
			p.o.OnItem(it)
		}
	}
	p.t.count(a)
	p.apply.apply(a)
	p.feed.record(a)
}

// scanProblems reports what the scans could not read.
func (p *pass) scanProblems(in *inputs) {
	for _, pr := range in.src.Problems() {
		p.t.problem(pr.Path, pr.Err, errors.Is(pr.Err, scan.ErrVanished))
	}
	if in.dstScan != nil {
		for _, pr := range in.dstScan.Problems() {
			p.t.problem(pr.Path, fmt.Errorf("destination: %w", pr.Err), false)
		}
	}
}

// recheck re-scans the source after a final pass: what moved is in
// Result.NotQuiet.
func (p *pass) recheck(ctx context.Context, st *state.Dir) error {
	if !p.o.DryRun {
		c := tree.ScanConfig{Exclude: p.o.Exclude, Xattrs: p.xattrNS(), Cache: filepath.Join(st.Path, "src.scan")}
		if err := recheck(ctx, st, p.src, c, p.t); err != nil {
			return err
		}
	}
	p.t.res.NotQuiet = p.t.notQuiet
	return nil
}

func (p *pass) passInfo(start time.Time, phases record.PhaseTimes) PassInfo {
	info := PassInfo{Kind: p.o.Kind, Final: p.o.Final, Start: start, Src: p.o.Src, Dst: p.o.Dst, Phases: phases}
	if p.o.Rules != nil {
		info.Class = p.o.Rules.Class()
	}
	return info
}
