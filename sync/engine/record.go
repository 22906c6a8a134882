package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/state"
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
func (r *Recorder) Commit(res *Result) error {
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
	if !r.dstKept {
		if err := r.dstF.CloseAtomicallyReplace(); err != nil {
			return fmt.Errorf("commit destination manifest: %w", err)
		}
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
	Phases   state.PhaseTimes
}

// Record appends the record of the pass that res describes to the state
// directory's history (passes.jsonl), after Commit. A dry run records
// nothing.
func (r *Recorder) Record(res *Result, info PassInfo) error {
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
	rec := &state.Pass{Kind: kind, Class: info.Class, Start: info.Start, End: time.Now(), Src: info.Src, Dst: info.Dst,
		OK: res.Stats.Failed == 0, Stats: res.Stats, Phases: info.Phases, Quiet: quiet}
	if q := res.Queue; q != nil {
		rec.Queue = &state.Queue{Src: q.Src, Dst: q.Dst}
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
