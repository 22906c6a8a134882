package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/msync/msync/record"

	"github.com/google/renameio/v2"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
)

// Recorder is the last stage of a pass: it writes the pass's new source
// and destination manifests as their entries arrive, in manifest order,
// and commits them with the pass record once the pass finished.
//
// The new source manifest is written where a killed pass leaves it
// (state.Dir.PendingPath): it lists what the pass may have put at the
// destination, which the next pass takes into account
// (state.Dir.TakeInterrupted). The destination manifest goes to a temp file
// that only Commit renames into place.
//
// A pass that does not scan the destination (a push to stock rsync) uses
// it so:
//
//	rec, err := engine.OpenRecorder(st) // st bound to its pair, st.Begin() done
//	defer rec.Abort()
//	for each entry of the new source, in manifest order:
//		rec.Add(e, e) // what the receiver confirmed holding: both sides
//	rec.Commit(res)   // after the receiver confirmed the run
//	rec.Record(res, engine.PassInfo{...})
//
// Add, Commit and Record are called from one goroutine.
type Recorder struct {
	st   *state.Dir
	srcF *os.File              // the pending source manifest; nil in a dry run
	dstF *renameio.PendingFile // the next destination manifest; nil in a dry run
	// src and dst write the manifests from their first difference to the
	// last committed ones (manifest.Keeper); without a base, in full.
	src, dst         *manifest.Keeper
	srcKept, dstKept bool
	err              error // the first write error: nothing more is written
	finished         bool  // the manifests were closed
	committed        bool

	// Set by the engine's own pass (see newPassRecorder).
	log         io.Writer
	xattrs      []string       // the xattr namespaces the pass read: recorded at commit
	freshXattrs bool           // the last manifests hold others: forget them until commit
	journal     *state.Journal // intents of the names the pass made visible
	settle      []string       // what killed passes left: removed once this one committed
}

// OpenRecorder starts the new manifests of a pass in st, which must be
// bound to its pair (state.Dir.Bind) and locked by this process: every
// entry is written (no last manifest is kept as it is).
func OpenRecorder(st *state.Dir) (*Recorder, error) {
	return openRecorder(st, nil, nil, false)
}

// openRecorder is OpenRecorder with the last committed manifests as bases
// (nil: none) that the manifests keep when the pass changed nothing; in
// a dry run it writes nothing.
func openRecorder(st *state.Dir, srcBase, dstBase func() (manifest.Iterator, func(), error), dryRun bool) (*Recorder, error) {
	r := &Recorder{st: st, log: io.Discard}
	if dryRun {
		return r, nil
	}
	var err error
	r.srcF, err = os.OpenFile(st.PendingPath(), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if r.dstF, err = st.PendingFile(state.Dest); err != nil {
		r.srcF.Close()
		return nil, err
	}
	if st.Adopt() {
		// Written again in full, to record the pair.
		srcBase, dstBase = nil, nil
	}
	r.src = manifest.NewKeeper(srcBase, func() (*manifest.Writer, error) { return st.NewWriter(r.srcF) })
	r.dst = manifest.NewKeeper(dstBase, func() (*manifest.Writer, error) { return st.NewWriter(r.dstF) })
	return r, nil
}

// Add records the new entries at one path: src in the source manifest and
// dst in the destination's (either may be nil: the side has no such
// path). Paths come in manifest order (manifest.Compare). After an error,
// every later Add returns it.
func (r *Recorder) Add(src, dst *manifest.Entry) error {
	return r.add(src, nil, dst, nil)
}

// add is Add with the last committed manifests' entries at the path (base
// and dbase, nil when they have none); a path with no new entry but a base
// drops that base entry.
func (r *Recorder) add(src, base, dst, dbase *manifest.Entry) error {
	if r.src == nil || r.err != nil {
		return r.err
	}
	var err error
	switch {
	case src != nil:
		err = r.src.Add(src, base)
	case base != nil:
		err = r.src.Drop()
	}
	if err != nil {
		r.err = fmt.Errorf("source manifest: %w", err)
		return r.err
	}
	switch {
	case dst != nil:
		err = r.dst.Add(dst, dbase)
	case dbase != nil:
		err = r.dst.Drop()
	}
	if err != nil {
		r.err = fmt.Errorf("destination manifest: %w", err)
	}
	return r.err
}

// finish closes both manifests (no commit yet).
func (r *Recorder) finish() error {
	if r.finished || r.src == nil || r.err != nil {
		return r.err
	}
	r.finished = true
	var err error
	if r.srcKept, err = r.src.Close(); err != nil {
		r.err = fmt.Errorf("source manifest: %w", err)
		return r.err
	}
	if r.dstKept, err = r.dst.Close(); err != nil {
		r.err = fmt.Errorf("destination manifest: %w", err)
	}
	return r.err
}

// Commit makes the new manifests the committed ones, sets res.Committed,
// and, when res counts no failure, clears the state directory's mark of a
// running pass (state.Dir.Done). Call it once the destination holds what
// the manifests say (for a push: after the receiver confirmed the run).
func (r *Recorder) Commit(res *record.Result) error {
	if r.src == nil {
		return nil // a dry run commits nothing
	}
	if err := r.finish(); err != nil {
		return err
	}
	st := r.st
	if r.freshXattrs {
		// Until SetXattrs below, no record says what they hold.
		if err := st.ForgetXattrs(); err != nil {
			return err
		}
	}
	// A manifest the pass did not change stays as committed.
	if r.srcKept {
		r.srcF.Close()
		if err := os.Remove(r.srcF.Name()); err != nil {
			return fmt.Errorf("commit source manifest: %w", err)
		}
	} else if err := commitFile(r.srcF, st.ManifestPath(state.Source)); err != nil {
		return fmt.Errorf("commit source manifest: %w", err)
	}
	if r.dstKept {
		r.dstF.Cleanup() // its pending file goes, as Abort would have removed it
	} else if err := r.dstF.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("commit destination manifest: %w", err)
	}
	r.committed = true
	res.Committed = true
	if err := st.SetXattrs(r.xattrs); err != nil {
		fmt.Fprintf(r.log, "msync: %s (the next pass reads them again)\n", manifest.EscapeLines(err.Error()))
	}
	settle := r.settle
	if r.journal != nil {
		r.journal.Close()
		settle = append(settle[:len(settle):len(settle)], st.JournalPath())
	}
	if err := st.SettleInterrupted(settle); err != nil {
		return err
	}
	if res.Stats.Failed == 0 {
		return st.Done()
	}
	return nil
}

// Abort drops what Commit did not commit: the destination manifest's temp
// file goes; the pending source manifest stays for the next pass to take
// (state.Dir.TakeInterrupted). Safe to defer: after Commit it does nothing.
func (r *Recorder) Abort() {
	if r.src == nil || r.committed {
		return
	}
	r.srcF.Close()
	r.dstF.Cleanup()
}

// PassInfo is what a pass record holds besides its Result.
type PassInfo struct {
	Kind     Kind
	Final    bool   // recorded as kind "final", with whether the source was quiet (Result.NotQuiet)
	Class    string // the dataset's class; "" is generic
	Start    time.Time
	Src, Dst string
	Phases   record.PhaseTimes
}

// Record appends the record of the pass that res describes to the state
// directory's history (passes.jsonl), after Commit. A dry run records
// nothing.
func (r *Recorder) Record(res *record.Result, info PassInfo) error {
	if r.src == nil {
		return nil
	}
	if !r.committed {
		return errors.New("state: pass record before the commit")
	}
	kind := string(info.Kind)
	var quiet *bool
	if info.Final {
		kind = "final"
		q := len(res.NotQuiet) == 0
		quiet = &q
	}
	rec := &record.Pass{Kind: kind, Class: info.Class, Start: info.Start, End: time.Now(), Src: info.Src, Dst: info.Dst,
		OK: res.Stats.Failed == 0, Stats: res.Stats, Phases: info.Phases, Quiet: quiet}
	if res.Queue != nil {
		q := *res.Queue
		rec.Queue = &q
	}
	if last, err := state.LastPassEnd(r.st.Path); err == nil && !last.IsZero() {
		rec.GapSeconds = info.Start.Sub(last).Seconds()
	}
	rec.Duration = rec.End.Sub(rec.Start)
	return r.st.AppendPass(rec)
}

// commitFile syncs and closes f, renames it to path and syncs the directory.
func commitFile(f *os.File, path string) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// slot carries one path's new manifest entries to the manifest writer, in order.
type slot struct {
	src, dst *manifest.Entry
	job      *fileJob
	leader   *slot // hard link follower: the dst entry is the leader's
	// The entries at this path of the last committed manifests (source and
	// destination), when the writers may keep them (manifest.Keeper). A slot with neither src nor dst
	// only says that these entries are gone.
	base, dbase *manifest.Entry
}

// feed turns the planner's actions into slots for the manifest writer
// (write), with the entries of the last committed manifests at each path
// that the writer keeps when nothing changed (manifest.Keeper).
type feed struct {
	slots chan *slot
	rules Rules // nil: no class rules
	// keepSrc, keepDst: the writer keeps the last manifests (Recorder).
	keepSrc, keepDst bool
	oldDst           *manifest.Peeker // the last destination manifest, when the destination is scanned
	curM, curD       *manifest.Entry  // their entries at the merge's path
	emitted          bool             // a slot was sent for that path
	queueDst         int64            // Rules.Queued destination paths, counted by write
	writer           sync.WaitGroup   // the writer goroutine (start)
	err              error            // its error, read after stop
	waited           time.Duration    // the merge's waits for the writer
}

// start starts the manifest writer: it hands the slots to rec.
func (f *feed) start(rec *Recorder) {
	f.writer.Add(1)
	go func() {
		defer f.writer.Done()
		f.err = f.write(rec)
	}()
}

// stop waits for the writer to write every slot sent and returns its error.
func (f *feed) stop() error {
	close(f.slots)
	f.writer.Wait()
	return f.err
}

// at moves the feed to path: m and d are the merge's last manifest and
// destination entries there.
func (f *feed) at(path string, m, d *manifest.Entry) error {
	f.curM, f.curD, f.emitted = nil, nil, false
	if f.keepSrc {
		f.curM = m
	}
	switch {
	case f.oldDst != nil:
		var err error
		f.curD, err = f.oldDstAt(path)
		return err
	case f.keepDst:
		f.curD = d // the trusted manifest is the destination's stream
	}
	return nil
}

// done ends the merge's path: the last manifests' entries there go when
// no action recorded it.
func (f *feed) done() {
	if !f.emitted && (f.curM != nil || f.curD != nil) {
		f.put(&slot{})
	}
}

// drain ends the feed: what is left of the last destination manifest is gone.
func (f *feed) drain() error {
	if f.oldDst == nil {
		return nil
	}
	_, err := f.oldDstAt("\x00")
	return err
}

// oldDstAt returns the last destination manifest's entry at path (nil if
// it has none), after sending the writer a slot that drops each entry
// before it: paths the destination scan no longer has. "\x00" drains it.
func (f *feed) oldDstAt(path string) (*manifest.Entry, error) {
	for {
		o, err := f.oldDst.Peek()
		if err != nil {
			return nil, fmt.Errorf("destination manifest: %w", err)
		}
		if o == nil || path != "\x00" && manifest.Compare(o.Path, path) > 0 {
			return nil, nil
		}
		f.oldDst.Take()
		if o.Path == path {
			return o, nil
		}
		sendWaiting(f.slots, &slot{dbase: o}, &f.waited)
	}
}

func (f *feed) put(sl *slot) {
	sl.base, sl.dbase = f.curM, f.curD
	f.emitted = true
	sendWaiting(f.slots, sl, &f.waited)
}

// record sends the manifests' entries that a (applied) leaves at its path.
func (f *feed) record(a *action) {
	var sl *slot
	switch a.op {
	case actKeep, actMeta, actCreate:
		sl = &slot{src: a.s, dst: a.out}
		if a.s.Type == manifest.TypeDir {
			sl.dst = a.s
		}
	case actCopy:
		sl = &slot{src: a.s, dst: a.d, job: a.job}
	case actLink, actLinked:
		sl = &slot{src: a.s, leader: a.leader.slot}
	case actReplace:
		if a.err == nil {
			return // the path's own action follows
		}
		sl = &slot{src: a.s, dst: a.d}
	case actExtra:
		sl = &slot{dst: a.d}
	case actHold:
		sl = &slot{src: a.m, dst: a.d}
	case actSkip:
		sl = &slot{src: a.s, dst: a.d}
	case actOrphan:
		sl = &slot{src: a.s}
	default:
		return // actDelete, actFixup, actRelease: nothing recorded
	}
	if a.group != nil {
		a.group.slot = sl
	}
	f.put(sl)
}

// write consumes the slots in order and hands their entries to rec.
func (f *feed) write(rec *Recorder) error {
	// A deferred transfer (Rules.Last) is done only after the merge has
	// left its directory: while one heads the order, later entries wait
	// here instead of stalling the merge.
	var backlog []*slot
	for sl := range f.slots {
		if len(backlog) == 0 && (sl.job == nil || !sl.job.deferred) {
			f.writeSlot(rec, sl)
			continue
		}
		backlog = append(backlog, sl)
		for len(backlog) > 0 && (backlog[0].job == nil || !backlog[0].job.deferred || isDone(backlog[0].job)) {
			f.writeSlot(rec, backlog[0])
			backlog[0] = nil
			backlog = backlog[1:]
		}
	}
	for _, sl := range backlog {
		f.writeSlot(rec, sl)
	}
	return rec.finish()
}

func (f *feed) writeSlot(rec *Recorder, sl *slot) {
	if sl.job != nil {
		<-sl.job.done
		if sl.job.err == nil {
			sl.dst = sl.job.out
		} else {
			sl.src.HasHash = false
		}
	}
	if sl.leader != nil {
		if l := sl.leader.dst; l != nil {
			e := *l
			e.Path = sl.src.Path
			sl.dst = &e
		}
	}
	if f.rules != nil && sl.dst != nil && f.rules.Queued(pathOf(sl)) {
		f.queueDst++
	}
	var dst *manifest.Entry
	if sl.dst != nil {
		e := *sl.dst
		e.Path = pathOf(sl)
		if sl.src != nil && sl.src.IsHardlinked() {
			// Read before its links were made: a trusted manifest
			// must tell that the name is linked when the source
			// splits it off.
			e.Nlink = max(e.Nlink, 2)
		}
		dst = &e
	}
	rec.add(sl.src, sl.base, dst, sl.dbase) // an error is sticky: finish returns it
	// A hard link leader's slot lives on in its linkGroup: not its bases.
	sl.base, sl.dbase = nil, nil
}

func isDone(j *fileJob) bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

func pathOf(sl *slot) string {
	if sl.src != nil {
		return sl.src.Path
	}
	return sl.dst.Path
}

// recheck re-scans the source and records (as moved) what differs from the
// manifest the pass committed.
func recheck(ctx context.Context, st *state.Dir, src Source, c tree.ScanConfig, t *tally) error {
	r, err := st.OpenManifest(state.Source)
	if err != nil || r == nil {
		return fmt.Errorf("final re-check: %w", err)
	}
	defer r.Close()
	sc, err := src.Scan(ctx, c)
	if err != nil {
		return fmt.Errorf("final re-check: %w", err)
	}
	defer sc.Close()
	err = manifest.Diff(r, sc, func(o, n *manifest.Entry) error {
		if n != nil && t.held[n.Path] || o != nil && t.held[o.Path] {
			return nil // left as it is on purpose; not part of this pass
		}
		switch {
		case o == nil:
			t.moved(n.Path, "appeared")
		case n == nil:
			t.moved(o.Path, "vanished")
		case o.Type != n.Type || o.Size != n.Size || o.Mtime != n.Mtime || o.Ctime != n.Ctime ||
			o.Inode != n.Inode || o.Mode != n.Mode || o.UID != n.UID || o.GID != n.GID || o.LinkTarget != n.LinkTarget:
			if o.Type == manifest.TypeDir && o.Mtime == n.Mtime && o.Mode == n.Mode {
				return nil // a directory's ctime moves with its contents, reported there
			}
			t.moved(n.Path, "changed")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("final re-check: %w", err)
	}
	return nil
}
