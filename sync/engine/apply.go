package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/state"
	"golang.org/x/sys/unix"
)

// The applier carries the planner's actions out at the destination: it
// makes directories, symlinks and special files and sets metadata as the
// actions come (each path's parent exists before it), hands file copies to
// its workers (worker.go), and keeps hard links, deletions and directory
// metadata for the end of the pass (finish), when every file is in place.

type applier struct {
	o       *Options       // read only
	t       *tally         // problems and statistics
	src     Source         // what the workers fetch from
	local   localTree      // the source when it is on this host
	srcRoot *fsx.Root      // its root, for direct reads
	dst     *dest          // nil when the destination does not exist (a dry run)
	dirs    *fsx.Dirs      // the planner's goroutine's destination directories
	dstScan *scan.Scanner  // the destination's scan: leftover temps; nil when trusted
	journal *state.Journal // intents of the names the pass makes visible (journal.go)

	jobs chan *fileJob
	// waited is the time the merge waited for the workers: to take a
	// file, to finish a directory's files before its deferred ones, or
	// to let a request ahead go out (a source's Fetch of a new file).
	waited time.Duration
	// unlinked is the time finish spent deleting (record.PhaseTimes.Unlink).
	unlinked time.Duration
	workers  sync.WaitGroup
	inflight sync.WaitGroup // dispatched transfers not yet done
	// ahead: new files are requested when dispatched (aheadFetcher),
	// with aheadCtx, the transfers' context.
	ahead    bool
	aheadCtx context.Context
	abort    atomic.Bool // the merge ended early: deferred transfers are dropped
	// noTmpfile: the destination refused O_TMPFILE once; use named temps.
	noTmpfile atomic.Bool
	// noDirect: the destination refused O_DIRECT once; write through the
	// page cache.
	noDirect atomic.Bool

	links   []pendingLink
	deletes []string
	fixups  []*manifest.Entry
}

type pendingLink struct {
	target, path string
	intent       uint64 // applier.intent
}

// start starts the transfer workers (none in a dry run).
func (ap *applier) start(ctx context.Context) {
	ap.jobs = make(chan *fileJob, 64)
	if af, ok := ap.src.(aheadFetcher); ok && ap.local == nil && !ap.o.DryRun {
		ap.ahead, ap.aheadCtx = af.FetchesAhead(), ctx
	}
	if ap.o.DryRun {
		return
	}
	for range ap.o.Workers {
		ap.workers.Add(1)
		go func() {
			defer ap.workers.Done()
			w := ap.newWorker()
			defer w.close()
			for j := range ap.jobs {
				w.transfer(ctx, j)
				close(j.done)
				ap.inflight.Done()
			}
		}()
	}
}

// wait returns when every transfer is done.
func (ap *applier) wait() {
	close(ap.jobs)
	ap.workers.Wait()
}

// see notes the entries of a path the planner is at (dest.seeACL).
func (ap *applier) see(s, d *manifest.Entry) {
	if ap.dst != nil {
		ap.dst.seeACL(s, d)
	}
}

// apply carries out a, or queues it for finish, and sets its outcomes.
func (ap *applier) apply(a *action) {
	switch a.op {
	case actKeep, actMeta:
		if a.s.Type == manifest.TypeDir {
			ap.openDir(a)
		} else {
			a.out = ap.updateMeta(a)
		}
	case actCreate:
		if a.s.Type == manifest.TypeDir {
			a.err = ap.mkdir(a.s)
		} else {
			a.out = ap.makeSpecial(a.s, a.d)
		}
	case actCopy:
		ap.copy(a)
	case actLink:
		ap.links = append(ap.links, pendingLink{target: a.leader.path, path: a.s.Path, intent: ap.intent(a.s.Path, a.s.Type)})
	case actDelete:
		ap.deletes = append(ap.deletes, a.d.Path)
	case actReplace:
		a.err = ap.replace(a.s, a.d)
	case actExtra:
		if a.d.Type == manifest.TypeDir {
			ap.removeTemps(a.d.Path)
		}
	case actFixup:
		ap.fixups = append(ap.fixups, a.s)
	case actRelease:
		ap.release(a.deferred)
	}
}

// replace removes d, in the way of s.
func (ap *applier) replace(s, d *manifest.Entry) error {
	if ap.o.DryRun {
		return nil
	}
	if err := removeAll(ap.dirs, d.Path); err != nil {
		ap.t.problem(s.Path, pathErr("replace", ap.dst.root, d.Path, err), false)
		return err
	}
	return nil
}

// openDir readies an existing destination directory for the pass: the
// leftovers of killed passes go, and our own read-only directory is made
// writable (its mode is restored with the other directory metadata).
func (ap *applier) openDir(a *action) {
	s, d := a.s, a.d
	if ap.dstScan == nil {
		// Trusted destination manifest: no scan, no leftovers to find.
	} else if temps := ap.dstScan.TakeTemps(d.Path); len(temps) > 0 && !ap.o.DryRun {
		// Leftovers of a killed pass: remove them, then reset the mtime.
		for _, t := range temps {
			if err := removeAll(ap.dirs, t); err == nil {
				ap.t.tempRemoved()
			}
		}
		a.dirty = true
	}
	if a.unlock {
		if dfd, name, err := ap.dirs.At(s.Path); err == nil && s.Path != "" {
			ownerWritable(dfd, name)
		} else if s.Path == "" {
			ownerWritable(ap.dst.root.Fd(), "")
		}
	}
}

// mkdir makes the directory s (its metadata is set when the planner
// leaves it); the root exists already.
func (ap *applier) mkdir(s *manifest.Entry) error {
	if ap.o.DryRun || s.Path == "" {
		return nil
	}
	dfd, name, err := ap.dirs.At(s.Path)
	if err == nil {
		err = ap.ready(ap.intent(s.Path, manifest.TypeDir))
	}
	if err == nil {
		if err = unix.Mkdirat(dfd, name, 0o700); err == nil {
			made("mkdir", s.Path)
		}
	}
	if err != nil && err != unix.EEXIST {
		ap.t.problem(s.Path, pathErr("mkdir", ap.dst.root, s.Path, err), false)
		return err
	}
	return nil
}

// makeSpecial makes the symlink, fifo, socket or device s in place of d
// and returns the destination's entry afterwards.
func (ap *applier) makeSpecial(s, d *manifest.Entry) *manifest.Entry {
	if ap.o.DryRun {
		return nil
	}
	dfd, name, err := ap.dirs.At(s.Path)
	if err == nil {
		err = ap.ready(ap.intent(s.Path, s.Type))
	}
	if err == nil {
		err = ap.dst.makeSpecial(dfd, name, s)
	}
	if err != nil {
		ap.t.problem(s.Path, pathErr("create", ap.dst.root, s.Path, err), false)
		return d
	}
	made("special", s.Path)
	return ap.lstatDst(s)
}

// lstatDst returns the destination entry of a path just written.
func (ap *applier) lstatDst(s *manifest.Entry) *manifest.Entry {
	dfd, name, err := ap.dirs.At(s.Path)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return nil
	}
	e := scan.FromStat(s.Path, &st)
	e.LinkTarget, e.Xattrs, e.Hash, e.HasHash = s.LinkTarget, s.Xattrs, s.Hash, s.HasHash
	if e.Type == manifest.TypeSymlink {
		e.Size = int64(len(e.LinkTarget))
	}
	return e
}

// updateMeta brings the metadata of an object whose content is current at
// the destination in line with the source (actMeta). It returns the
// destination's entry as it is afterwards.
func (ap *applier) updateMeta(a *action) *manifest.Entry {
	s, d := a.s, a.d
	if a.op != actMeta || ap.o.DryRun {
		return d
	}
	dfd, name, err := ap.dirs.At(s.Path)
	if err == nil {
		err = ap.dst.setMeta(dfd, name, s)
	}
	if err != nil {
		ap.t.problem(s.Path, pathErr("set metadata", ap.dst.root, s.Path, err), false)
		return d
	}
	now := *d
	now.Mode, now.Mtime, now.Xattrs = s.Mode, s.Mtime, s.Xattrs
	if ap.o.Owners {
		now.UID, now.GID = s.UID, s.GID
	}
	return &now
}

// copy starts the transfer of a file, or keeps it for the end of its
// directory (a.last).
func (ap *applier) copy(a *action) {
	if ap.o.DryRun {
		return
	}
	s := a.s
	j := &fileJob{s: s, d: a.d, m: a.m, mode: a.mode, done: make(chan struct{}), intent: ap.intent(s.Path, manifest.TypeFile), deferred: a.last}
	a.job = j
	if !a.last {
		ap.dispatch(j)
	}
}

// release sends the deferred transfers of a directory once every transfer
// dispatched before them is done, so that their files appear after the
// others (a darcs repository's hashed_inventory after its patches, an
// exim -H after its -D).
func (ap *applier) release(deferred []*action) {
	t := time.Now()
	ap.inflight.Wait()
	ap.waited += time.Since(t)
	for _, a := range deferred {
		j := a.job
		if j == nil {
			continue
		}
		if ap.abort.Load() {
			j.err = errors.New("not written: the pass ended early")
			close(j.done)
			continue
		}
		ap.dispatch(j)
	}
}

func (ap *applier) dispatch(j *fileJob) {
	ap.inflight.Add(1)
	if ap.ahead && j.d == nil {
		// A new file: nothing to sign, the request can go now.
		t := time.Now()
		j.reply, j.replyErr = ap.src.Fetch(ap.aheadCtx, j.request())
		ap.waited += time.Since(t)
		j.ahead = true
	}
	sendWaiting(ap.jobs, j, &ap.waited)
}

// sendWaiting sends v on ch, adding to *waited how long it had to wait.
func sendWaiting[T any](ch chan<- T, v T, waited *time.Duration) {
	select {
	case ch <- v:
		return
	default:
	}
	t := time.Now()
	ch <- v
	*waited += time.Since(t)
}

// finish makes the hard links, deletes and sets directory metadata, once
// every file is in place.
func (ap *applier) finish() {
	if ap.o.DryRun {
		return
	}
	for _, l := range ap.links {
		err := ap.ready(l.intent)
		if err == nil {
			err = ap.dst.link(ap.dirs, l.target, l.path)
		}
		if err != nil {
			ap.t.problem(l.path, pathErr("link", ap.dst.root, l.path, err), false)
		} else {
			made("link", l.path)
		}
	}
	if len(ap.deletes) > 0 {
		t := time.Now()
		ap.deleteAll()
		ap.unlinked = time.Since(t)
	}
	for _, e := range ap.fixups {
		if err := ap.applyDirMeta(e); err != nil {
			ap.t.problem(e.Path, pathErr("set metadata", ap.dst.root, e.Path, err), false)
		}
	}
}

func (ap *applier) applyDirMeta(e *manifest.Entry) error {
	if e.Path == "" {
		return ap.dst.setMeta(ap.dst.root.Fd(), ".", e)
	}
	dfd, name, err := ap.dirs.At(e.Path)
	if err != nil {
		return err
	}
	return ap.dst.setMeta(dfd, name, e)
}

// syncFS syncs the destination's file system when the policy is per pass.
func (ap *applier) syncFS() error {
	if ap.o.DryRun || ap.o.Fsync != FsyncPass || ap.dst == nil {
		return nil
	}
	if err := unix.Syncfs(ap.dst.root.Fd()); err != nil {
		return fmt.Errorf("sync destination file system: %w", err)
	}
	return nil
}
