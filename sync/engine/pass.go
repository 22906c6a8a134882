package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
	"golang.org/x/sys/unix"
)

// frame is a destination directory the merge is inside of.
type frame struct {
	path       string
	want       *manifest.Entry // source entry; nil when the source has no such directory
	dirty      bool            // its contents changed: the mtime must be set again
	needMeta   bool
	incomplete bool // the source directory could not be read completely
	deleting   bool // the destination directory is being removed with its contents
	failed     bool // could not be created: its contents are skipped
	// last are the transfers of files the class writes after the others of
	// this directory (Rules.Last): dispatched when the frame is closed.
	last []*fileJob
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

type linkKey struct{ dev, ino uint64 }

type leaderInfo struct {
	path   string
	slot   *slot
	dstIno uint64 // destination inode when the leader is not rewritten
}

type pendingLink struct {
	target, path string
	intent       uint64 // pass.intent
}

type pass struct {
	o       Options
	res     *Result
	mu      sync.Mutex // guards res
	dst     *dest
	dirs    *fsx.Dirs      // main goroutine's destination directories
	journal *state.Journal // intents of the names the pass makes visible (journal.go)
	src     Source
	local   *tree.Local // the source when it is on this host
	srcRoot *fsx.Root   // its root, for direct reads
	exclude *filter.Matcher
	dstScan *scan.Scanner
	stack   []*frame
	fixups  []*manifest.Entry
	deletes []string
	links   []pendingLink
	leaders map[linkKey]*leaderInfo
	claimed map[linkKey]bool // linked destination objects a path kept (keeps)
	jobs    chan *fileJob
	slots   chan *slot
	root    bool
	created bool // this pass created the destination root
	// noTmpfile: the destination refused O_TMPFILE once; use named temps.
	noTmpfile atomic.Bool
	// noDirect: the destination refused O_DIRECT once; write through the
	// page cache.
	noDirect  atomic.Bool
	notQuiet  []string        // source paths that moved during the pass, once each
	movedSeen map[string]bool // guards notQuiet against repeats
	stop      context.CancelCauseFunc
	rules     Rules           // nil: no class rules
	inflight  sync.WaitGroup  // dispatched transfers not yet done
	prevSrc   string          // the source path before the current one
	nextSrc   string          // the source path after it, when rules ask
	abort     atomic.Bool     // the merge ended early: deferred transfers are dropped
	queue     Queue           // Rules.Queued paths on each side, counted by the writer
	diffTime  time.Duration   // time spent in handle
	held      map[string]bool // source paths the rules left alone: the final re-check ignores them
	// ahead: new files are requested when dispatched (send.AheadFetcher),
	// with aheadCtx, the transfers' context.
	ahead    bool
	aheadCtx context.Context

	// The writers rewrite the last committed manifests only from their
	// first difference (manifest.Keeper); a pass that changed nothing
	// keeps the files. srcBase and dstBase open them (nil: not kept).
	srcBase, dstBase func() (manifest.Iterator, func(), error)
	curM, curD       *manifest.Entry  // their entries at the merge's path
	oldDst           *manifest.Peeker // the destination's when it is scanned
	emitted          bool             // handle sent a slot for that path
	st               *state.Dir       // bound to the pair: writes the manifests
}

// oldDstAt returns the last destination manifest's entry at path (nil if
// it has none), after sending the writer a slot that drops each entry
// before it: paths the destination scan no longer has. "\x00" drains it.
func (p *pass) oldDstAt(path string) (*manifest.Entry, error) {
	for {
		o, err := p.oldDst.Peek()
		if err != nil {
			return nil, fmt.Errorf("destination manifest: %w", err)
		}
		if o == nil || path != "\x00" && manifest.Compare(o.Path, path) > 0 {
			return nil, nil
		}
		p.oldDst.Take()
		if o.Path == path {
			return o, nil
		}
		p.slots <- &slot{dbase: o}
	}
}

// emit sends the slot of the merge's current path to the manifest writer.
func (p *pass) emit(sl *slot) {
	sl.base, sl.dbase = p.curM, p.curD
	p.emitted = true
	p.slots <- sl
}

// maxHeldLogged is how many entries left alone by a class's rules a pass
// names in its log; the result lists them all.
const maxHeldLogged = 5

// Run performs one pass as o describes.
func Run(ctx context.Context, o Options) (*Result, error) {
	p := &pass{o: o, res: &Result{}, leaders: map[linkKey]*leaderInfo{}, claimed: map[linkKey]bool{}, root: os.Geteuid() == 0}
	if o.StateDir == "" {
		return nil, errors.New("no state directory given")
	}
	if o.Workers <= 0 {
		p.o.Workers = 4
		if _, local := o.Source.(*tree.Local); o.Source != nil && !local {
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
	p.rules = o.Rules
	p.src = o.Source
	if p.src == nil {
		if err := checkPaths(o.Src, o.Dst); err != nil {
			return nil, err
		}
		p.local = tree.NewLocal(o.Src)
		defer p.local.Close()
		p.src = p.local
	} else if l, ok := p.src.(*tree.Local); ok {
		p.local = l
	}
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
	if as == ad || strings.HasPrefix(ad, as+"/") || strings.HasPrefix(as, ad+"/") ||
		fsx.Within(existingAncestor(ad), as) || fsx.Within(as, ad) {
		return fmt.Errorf("source %s and destination %s overlap", src, dst)
	}
	return nil
}

// errStopped wraps what made a pass stop on its own (a full file system).
var errStopped = errors.New("pass stopped")

// interrupted says why the pass ended early.
func (p *pass) interrupted(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, errStopped) {
		return cause
	}
	return fmt.Errorf("pass interrupted: %w", ctx.Err())
}

func (p *pass) problem(path string, err error, vanished bool) {
	if vanished && p.rules != nil && p.rules.Transient(path) {
		p.note(path, "vanished during the pass (normal for "+p.rules.Class()+")")
		return
	}
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		// Every file after this one would fail the same way: stop, commit
		// nothing; what is in place stays, the next pass completes it.
		p.stop(fmt.Errorf("%w: %w; free space at the destination and run the pass again", errStopped, err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.res.Problems = append(p.res.Problems, Problem{Path: path, Err: err.Error(), Vanished: vanished})
	if vanished {
		p.res.Stats.Vanished++
	} else {
		p.res.Stats.Failed++
	}
}

// moved records that a source path changed during the pass, with the first
// reason seen; retries and the final re-scan may report it again.
func (p *pass) moved(path, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.movedSeen[path] {
		return
	}
	if p.movedSeen == nil {
		p.movedSeen = map[string]bool{}
	}
	p.movedSeen[path] = true
	p.notQuiet = append(p.notQuiet, path+" ("+why+")")
}

func (p *pass) note(path, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.res.Problems = append(p.res.Problems, Problem{Path: path, Err: msg, Skipped: true})
	p.res.Stats.Skipped++
	fmt.Fprintf(p.o.Log, "msync: skipping %s: %s\n", manifest.Escape(path), manifest.EscapeLines(msg))
}

func (p *pass) item(code, path string, t manifest.Type, note string) {
	if p.o.OnItem == nil {
		return
	}
	if t == manifest.TypeDir {
		if path == "" {
			path = "."
		}
		path += "/"
	}
	p.o.OnItem(Item{Code: code, Path: path, Note: note})
}

func (p *pass) xattrNS() []string {
	if p.o.Xattrs {
		return fsx.XattrNamespaces()
	}
	return nil
}

func (p *pass) run(ctx context.Context, st *state.Dir) (*Result, error) {
	start := time.Now()
	var phases state.PhaseTimes
	o := &p.o
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p.stop = cancel

	// The state directory is checked before anything is made at DST.
	if err := p.bind(st); err != nil {
		return nil, err
	}
	dstExists := true
	if o.DstRoot != nil || o.DstCreated {
		if o.DstRoot == nil && !o.DryRun {
			return nil, errors.New("destination: created but not open")
		}
		dstExists, p.created = o.DstRoot != nil, o.DstCreated
	} else if _, err := os.Lstat(o.Dst); errors.Is(err, os.ErrNotExist) {
		dstExists = false
		if !o.DryRun {
			if err := os.MkdirAll(o.Dst, 0o700); err != nil {
				return nil, fmt.Errorf("create destination: %w", err)
			}
			dstExists = true
		}
		p.created = true
	} else if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	if dstExists {
		unlock, err := lockDest(o.Dst, o.DstRoot, o.Log)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	if p.created && dstExists {
		// Its pair now names the directory made, file system and inode.
		if err := p.bind(st); err != nil {
			return nil, err
		}
	}

	open := func(side state.Side) (manifest.Iterator, func(), error) {
		r, err := st.OpenManifest(side)
		if err != nil {
			return nil, nil, fmt.Errorf("state: %w (remove it to start over with msync initial)", err)
		}
		if r == nil {
			return manifest.Empty, func() {}, nil
		}
		return r, func() { r.Close() }, nil
	}
	srcCache, closeA, err := open(state.Source)
	if err != nil {
		return nil, err
	}
	defer closeA()
	reopen := func(side state.Side) func() (manifest.Iterator, func(), error) {
		return func() (manifest.Iterator, func(), error) {
			r, err := st.OpenManifest(side)
			if err == nil && r == nil {
				err = fmt.Errorf("%s manifest: %w", side, os.ErrNotExist)
			}
			if err != nil {
				return nil, nil, err
			}
			return r, func() { r.Close() }, nil
		}
	}
	hadSrc := srcCache != manifest.Empty
	dstCache, closeB, err := open(state.Dest)
	if err != nil {
		return nil, err
	}
	defer closeB()
	// What msync put at the destination: the last committed source manifest,
	// plus whatever killed passes recorded in their pending manifests.
	var interrupted []string
	if o.DryRun {
		interrupted = st.Unsettled()
	} else if interrupted, err = st.TakeInterrupted(); err != nil {
		return nil, err
	}
	// And the names they journaled before making them visible.
	journals := st.Journals()
	if !o.DryRun {
		if journals, err = st.TakeJournals(); err != nil {
			return nil, err
		}
	}
	if len(interrupted) > 0 || len(journals) > 0 || st.Interrupted() {
		fmt.Fprintln(o.Log, "msync: the previous pass was interrupted; this pass completes it")
	}
	var old manifest.Iterator = manifest.Empty
	if o.Kind == Catchup && hadSrc && len(interrupted) == 0 && len(journals) == 0 && !o.DryRun {
		// The merge's old entries are the committed manifest's alone.
		p.srcBase = reopen(state.Source)
	}
	// Decoded beside the scans: a remote source's file list takes a
	// while to arrive, and the merge then finds the manifest ready.
	ahead := 64 << 10
	var olds []manifest.Iterator
	if o.Kind == Catchup {
		var it manifest.Iterator
		if p.local != nil && srcCache != manifest.Empty {
			// One decoding of the last source manifest serves both the local
			// scanner's hash cache and the merge below, each at its pace.
			// Both follow the local scan, so decoding far ahead of it only
			// grows the heap (the Tee keeps what the merge's read-ahead has
			// taken until the scanner passes it): 4k entries.
			ahead = 4 << 10
			dec := manifest.ReadAhead(srcCache, ahead)
			defer dec.Close()
			cache, merge := manifest.Tee(dec)
			srcCache, it = cache, merge
		} else {
			var closeC func()
			if it, closeC, err = open(state.Source); err != nil {
				return nil, err
			}
			defer closeC()
		}
		olds = append(olds, it)
	} else if hadSrc {
		// An initial pass run again over a pair's state: what the last
		// committed pass put at DST is still msync's, and goes when the
		// source no longer has it, as in a catch-up.
		it, closeC, err := open(state.Source)
		if err != nil {
			return nil, err
		}
		defer closeC()
		olds = append(olds, it)
	}
	// An initial pass, too, deletes what killed passes put at DST and
	// the source no longer has.
	for _, path := range interrupted {
		r, err := manifest.Open(path)
		if err != nil {
			continue // a pass killed before it wrote a header
		}
		defer r.Close()
		olds = append(olds, manifest.Prefix{It: r})
	}
	js, closeJ, err := attributed(journals)
	if err != nil {
		return nil, err
	}
	defer closeJ()
	if olds = append(olds, js...); len(olds) > 0 {
		u := manifest.ReadAhead(manifest.Union(olds...), ahead)
		defer u.Close()
		old = u
	}

	tag, err := st.TempTag()
	if err != nil {
		return nil, err
	}
	ns := p.xattrNS()
	// Manifests that hold other xattrs than this pass reads (older state,
	// another user, --no-xattrs) cannot stand in for a read of them.
	freshXattrs := !st.XattrsMatch(ns)
	var dstIt manifest.Iterator = manifest.Empty
	var dstScan *scan.Scanner
	if o.TrustDest && dstExists {
		switch {
		case o.Kind != Catchup:
			fmt.Fprintln(o.Log, "msync: --trust-dest applies to catch-up passes; scanning the destination")
		case st.Interrupted():
			fmt.Fprintln(o.Log, "msync: the previous pass was interrupted; scanning the destination instead of trusting its manifest")
		case freshXattrs:
			fmt.Fprintln(o.Log, "msync: the last pass recorded other extended attributes; scanning the destination instead of trusting its manifest")
		default:
			it, closeD, err := open(state.Dest)
			if err != nil {
				return nil, err
			}
			defer closeD()
			if it != manifest.Empty {
				dstIt = it
				p.res.TrustedDest = true
				if !o.DryRun {
					p.dstBase = reopen(state.Dest)
				}
			}
		}
	}
	if dstExists && !p.res.TrustedDest {
		prev := dstCache
		if dstCache != manifest.Empty && !o.DryRun {
			// One decoding of the last destination manifest serves the
			// scanner's cache and the writer's base (manifest.Keeper),
			// as on the source side.
			dec := manifest.ReadAhead(dstCache, 4<<10)
			defer dec.Close()
			cache, base := manifest.Tee(dec)
			prev, p.oldDst = cache, manifest.NewPeeker(base)
			p.dstBase = reopen(state.Dest)
		}
		dstScan, err = scan.Start(ctx, scan.Config{Root: o.Dst, Dir: o.DstRoot, Exclude: p.exclude, Xattrs: ns, Prev: prev, FreshXattrs: freshXattrs, OwnTemp: ownTemp(tag)})
		if err != nil {
			return nil, fmt.Errorf("scan destination: %w", err)
		}
		defer dstScan.Close()
		dstIt = dstScan
		p.dstScan = dstScan
	}

	// The source's scan starts after the destination's: a remote source
	// may still be connecting, and the destination scan goes on meanwhile.
	srcScan, err := p.src.Scan(ctx, tree.ScanConfig{Exclude: o.Exclude, Xattrs: ns, Prev: srcCache, FreshXattrs: freshXattrs, Cache: filepath.Join(st.Path, "src.scan")})
	if err != nil {
		return nil, fmt.Errorf("scan source %s: %w", p.src, err)
	}
	defer srcScan.Close()

	if dstExists {
		var r *fsx.Root
		if o.DstRoot != nil {
			r, err = o.DstRoot.Dup()
		} else {
			r, err = fsx.OpenRoot(o.Dst)
		}
		if err != nil {
			return nil, err
		}
		defer r.Close()
		p.dst = &dest{root: r, owners: o.Owners, xattrNS: ns, fsync: o.Fsync, tag: tag}
		p.dst.watchACL()
		p.dirs = r.NewDirs()
		defer p.dirs.Close()
	}
	if p.local != nil {
		p.srcRoot, err = p.local.OpenRoot()
		if err != nil {
			return nil, err
		}
		defer p.srcRoot.Close()
	}

	if !o.DryRun {
		if err := st.Begin(); err != nil {
			return nil, err
		}
		p.journal = st.NewJournal(o.Fsync == FsyncFile)
		defer p.journal.Close()
	}

	// Manifest writer: new source and destination manifests, in order.
	if st.Adopt() {
		// Written again in full, to record the pair.
		p.srcBase, p.dstBase = nil, nil
	}
	rec, err := openRecorder(st, p.srcBase, p.dstBase, o.DryRun)
	if err != nil {
		return nil, err
	}
	defer rec.Abort()
	rec.log, rec.xattrs, rec.freshXattrs, rec.journal = o.Log, ns, freshXattrs, p.journal
	rec.settle = append(interrupted[:len(interrupted):len(interrupted)], journals...)
	var writerErr error
	var writerWG sync.WaitGroup
	p.slots = make(chan *slot, 4096)
	writerWG.Add(1)
	go func() {
		defer writerWG.Done()
		writerErr = p.writeManifests(rec)
	}()

	// Transfer workers.
	var workersWG sync.WaitGroup
	p.jobs = make(chan *fileJob, 64)
	if af, ok := p.src.(send.AheadFetcher); ok && p.local == nil && !o.DryRun {
		p.ahead, p.aheadCtx = af.FetchesAhead(), ctx
	}
	if !o.DryRun {
		for range o.Workers {
			workersWG.Add(1)
			go func() {
				defer workersWG.Done()
				w := p.newWorker()
				defer w.close()
				for j := range p.jobs {
					w.transfer(ctx, j)
					close(j.done)
					p.inflight.Done()
				}
			}()
		}
	}

	// Merge source scan, destination scan and the last committed manifest.
	S, D, M := manifest.NewPeeker(srcScan), manifest.NewPeeker(dstIt), manifest.NewPeeker(old)
	var loopErr error
	for {
		if ctx.Err() != nil {
			loopErr = p.interrupted(ctx)
			break
		}
		s, err := S.Peek()
		if err != nil {
			loopErr = fmt.Errorf("scan source: %w", err)
			break
		}
		d, err := D.Peek()
		if err != nil {
			loopErr = fmt.Errorf("scan destination: %w", err)
			break
		}
		m, err := M.Peek()
		if err != nil {
			loopErr = err
			break
		}
		path, ok := minPath(s, d, m)
		if !ok {
			break
		}
		if s != nil && s.Path != path {
			s = nil
		} else if s != nil {
			S.Take()
			if p.rules != nil && s.Type == manifest.TypeFile {
				p.nextSrc = ""
				if n, err := S.Peek(); err == nil && n != nil {
					p.nextSrc = n.Path
				}
			}
		}
		if d != nil && d.Path != path {
			d = nil
		} else if d != nil {
			D.Take()
		}
		if m != nil && m.Path != path {
			m = nil
		} else if m != nil {
			M.Take()
		}
		if o.Counters != nil && s != nil {
			o.Counters.Scanned.Add(1)
		}
		t0 := time.Now()
		p.popTo(path)
		p.curM, p.curD, p.emitted = nil, nil, false
		if p.srcBase != nil {
			p.curM = m
		}
		switch {
		case p.oldDst != nil:
			if p.curD, err = p.oldDstAt(path); err != nil {
				loopErr = err
			}
		case p.dstBase != nil:
			p.curD = d // the trusted manifest is the destination's stream
		}
		if loopErr != nil {
			break
		}
		p.handle(s, d, m)
		if !p.emitted && (p.curM != nil || p.curD != nil) {
			p.emit(&slot{})
		}
		p.diffTime += time.Since(t0)
		if s != nil {
			// path, not s.Path: a worker may already be rewriting *s
			// (a file that changed since the scan).
			p.prevSrc = path
		}
	}
	if loopErr == nil && p.oldDst != nil {
		// What is left of the last destination manifest is gone.
		if _, err := p.oldDstAt("\x00"); err != nil {
			loopErr = err
		}
	}
	if loopErr != nil || ctx.Err() != nil {
		p.abort.Store(true)
	}
	p.popTo("\x00") // pops every frame, root last
	phases.Diff = p.diffTime
	if n := p.res.Stats.Held; n > maxHeldLogged {
		fmt.Fprintf(o.Log, "msync: and %d more left as they are by the %s rules (all in --json)\n", n-maxHeldLogged, p.rules.Class())
	}
	if o.Counters != nil {
		o.Counters.ScanFinished.Store(true)
	}
	phases.Scan = time.Since(start)
	close(p.jobs)
	workersWG.Wait()
	phases.Transfer = time.Since(start)
	for _, pr := range srcScan.Problems() {
		p.problem(pr.Path, pr.Err, errors.Is(pr.Err, scan.ErrVanished))
	}
	if dstScan != nil {
		for _, pr := range dstScan.Problems() {
			p.problem(pr.Path, fmt.Errorf("destination: %w", pr.Err), false)
		}
	}
	if loopErr == nil && ctx.Err() != nil {
		// Interrupted after the merge: transfers were cut short. Commit nothing;
		// the pending manifest tells the next pass what may be at DST.
		loopErr = p.interrupted(ctx)
	}
	if loopErr != nil {
		close(p.slots)
		writerWG.Wait()
		return p.res, loopErr
	}

	t := time.Now()
	if !o.DryRun {
		for _, l := range p.links {
			err := p.ready(l.intent)
			if err == nil {
				err = p.dst.link(p.dirs, l.target, l.path)
			}
			if err != nil {
				p.problem(l.path, pathErr("link", p.dst.root, l.path, err), false)
			} else {
				made("link", l.path)
			}
		}
		p.deleteAll()
		for _, e := range p.fixups {
			if err := p.applyDirMeta(e); err != nil {
				p.problem(e.Path, pathErr("set metadata", p.dst.root, e.Path, err), false)
			}
		}
	}
	phases.Delete = time.Since(t)

	close(p.slots)
	writerWG.Wait()
	if p.rules != nil && (p.queue.Src > 0 || p.queue.Dst > 0) {
		q := p.queue
		p.res.Queue = &q
	}
	if wb, ok := p.src.(interface{ WireBytes() int64 }); ok {
		p.res.Stats.WireBytes = wb.WireBytes()
	}
	if writerErr != nil {
		return p.res, writerErr
	}
	if err := ctx.Err(); err != nil {
		return p.res, p.interrupted(ctx)
	}
	t = time.Now()
	if !o.DryRun {
		if o.Fsync == FsyncPass {
			var err error
			if p.dst != nil {
				err = unix.Syncfs(p.dst.root.Fd())
			}
			if err != nil {
				return p.res, fmt.Errorf("sync destination file system: %w", err)
			}
		}
		if err := rec.Commit(p.res); err != nil {
			return p.res, err
		}
	}
	phases.Commit = time.Since(t)

	if o.Final {
		t = time.Now()
		if err := p.recheck(ctx, st); err != nil {
			return p.res, err
		}
		p.res.NotQuiet = p.notQuiet
		phases.Recheck = time.Since(t)
	}

	info := PassInfo{Kind: o.Kind, Final: o.Final, Start: start, Src: o.Src, Dst: o.Dst, Phases: phases}
	if p.rules != nil {
		info.Class = p.rules.Class()
	}
	if err := rec.Record(p.res, info); err != nil {
		return p.res, err
	}
	return p.res, nil
}

func minPath(es ...*manifest.Entry) (string, bool) {
	var best *manifest.Entry
	for _, e := range es {
		if e != nil && (best == nil || manifest.Compare(e.Path, best.Path) < 0) {
			best = e
		}
	}
	if best == nil {
		return "", false
	}
	return best.Path, true
}

// popTo closes the directory frames that are not ancestors of path.
func (p *pass) popTo(path string) {
	for len(p.stack) > 0 {
		top := p.stack[len(p.stack)-1]
		if path != "\x00" && manifest.IsAncestor(top.path, path) {
			return
		}
		p.stack = p.stack[:len(p.stack)-1]
		if top.want != nil && !top.failed && (top.dirty || top.needMeta) {
			p.fixups = append(p.fixups, top.want)
		}
		if len(top.last) > 0 {
			p.dispatchLast(top.last)
		}
	}
}

// dispatchLast sends the deferred transfers of a directory once every
// transfer dispatched before them is done, so that their files appear
// after the others (a darcs repository's hashed_inventory after its
// patches, an exim -H after its -D).
func (p *pass) dispatchLast(jobs []*fileJob) {
	p.inflight.Wait()
	for _, j := range jobs {
		if p.abort.Load() {
			j.err = errors.New("not written: the pass ended early")
			close(j.done)
			continue
		}
		p.dispatch(j)
	}
}

func (p *pass) dispatch(j *fileJob) {
	p.inflight.Add(1)
	if p.ahead && j.d == nil {
		// A new file: nothing to sign, the request can go now.
		j.reply, j.replyErr = p.src.Fetch(p.aheadCtx, j.request())
		j.ahead = true
	}
	p.jobs <- j
}

func (p *pass) top() *frame {
	if len(p.stack) == 0 {
		return &frame{}
	}
	return p.stack[len(p.stack)-1]
}

func (p *pass) dirtyParent() {
	if len(p.stack) > 0 {
		p.stack[len(p.stack)-1].dirty = true
	}
}

func sameType(s, d *manifest.Entry) bool {
	if s.Type != d.Type {
		return false
	}
	if s.Type == manifest.TypeChar || s.Type == manifest.TypeBlock {
		return s.Rdev == d.Rdev
	}
	return true
}

// metaFlags returns rsync's itemize letters for what differs apart from
// content: positions t, p, o, g, a (ACLs) and x of "YXcstpoguax".
func (p *pass) metaFlags(s, d *manifest.Entry) (code [11]byte, differs bool) {
	for i := range code {
		code[i] = '.'
	}
	if s.Mtime != d.Mtime {
		code[4], differs = 't', true
	}
	if s.Type != manifest.TypeSymlink && s.Mode != d.Mode {
		code[5], differs = 'p', true
	}
	if p.o.Owners && s.UID != d.UID {
		code[6], differs = 'o', true
	}
	if p.o.Owners && s.GID != d.GID {
		code[7], differs = 'g', true
	}
	if p.o.Xattrs {
		if x, a := manifest.XattrsDiffer(s.Xattrs, d.Xattrs); x || a {
			if a {
				code[9] = 'a'
			}
			if x {
				code[10] = 'x'
			}
			differs = true
		}
	}
	return code, differs
}

func typeLetter(t manifest.Type) byte {
	switch t {
	case manifest.TypeFile:
		return 'f'
	case manifest.TypeDir:
		return 'd'
	case manifest.TypeSymlink:
		return 'L'
	case manifest.TypeChar, manifest.TypeBlock:
		return 'D'
	}
	return 'S'
}

func (p *pass) handle(s, d, m *manifest.Entry) {
	if p.dst != nil {
		p.dst.seeACL(s, d)
	}
	parent := p.top()
	if parent.deleting || parent.failed {
		if d != nil && d.Type == manifest.TypeDir {
			p.stack = append(p.stack, &frame{path: d.Path, deleting: parent.deleting, failed: parent.failed})
		}
		if s != nil && parent.failed {
			p.emit(&slot{src: s})
		}
		return
	}
	if s == nil {
		p.handleGone(d, m, parent)
		return
	}
	p.countSource(s)
	if p.rules != nil && s.Type == manifest.TypeFile && (d == nil || d.Type == manifest.TypeFile) {
		if why := p.rules.Hold(s, p.prevSrc, p.nextSrc); why != "" {
			p.mu.Lock()
			p.res.Problems = append(p.res.Problems, Problem{Path: s.Path, Err: why, Skipped: true})
			if p.res.Stats.Held < maxHeldLogged {
				fmt.Fprintf(p.o.Log, "msync: leaving %s: %s\n", manifest.Escape(s.Path), why)
			}
			p.res.Stats.Held++
			if p.o.Final {
				if p.held == nil {
					p.held = map[string]bool{}
				}
				p.held[s.Path] = true
			}
			p.mu.Unlock()
			// What msync put there before (m) stays its to delete later.
			p.emit(&slot{src: m, dst: d})
			return
		}
	}
	if (s.Type == manifest.TypeChar || s.Type == manifest.TypeBlock) && !p.root {
		p.note(s.Path, "device nodes need root")
		p.emit(&slot{src: s, dst: d})
		return
	}
	if d != nil && !sameType(s, d) {
		p.item("*deleting  ", d.Path, d.Type, "")
		if !p.o.DryRun {
			if err := removeAll(p.dirs, d.Path); err != nil {
				p.problem(s.Path, pathErr("replace", p.dst.root, d.Path, err), false)
				if d.Type == manifest.TypeDir {
					p.stack = append(p.stack, &frame{path: d.Path, failed: true})
				}
				p.emit(&slot{src: s, dst: d})
				return
			}
		}
		if d.Type == manifest.TypeDir && s.Type != manifest.TypeDir {
			// Its contents follow in the destination scan: already gone.
			gone := d.Path
			defer func() { p.stack = append(p.stack, &frame{path: gone, deleting: true}) }()
		}
		d = nil
		p.dirtyParent()
	}
	switch s.Type {
	case manifest.TypeDir:
		p.handleDir(s, d, parent)
	case manifest.TypeFile:
		p.handleFile(s, d, m)
	default:
		p.handleSpecial(s, d)
	}
}

func (p *pass) countSource(s *manifest.Entry) {
	st := &p.res.Stats
	p.mu.Lock()
	defer p.mu.Unlock()
	st.Entries++
	if p.rules != nil && p.rules.Queued(s.Path) {
		p.queue.Src++
	}
	switch s.Type {
	case manifest.TypeFile:
		st.Files++
		st.SrcBytes += s.Size
	case manifest.TypeDir:
		st.Dirs++
	case manifest.TypeSymlink:
		st.Symlinks++
	default:
		st.Specials++
	}
}

func (p *pass) handleGone(d, m *manifest.Entry, parent *frame) {
	if d == nil {
		return // only in the old manifest: already gone at both ends
	}
	// m: msync put d there (an initial pass's old entries are only what
	// killed passes did).
	del := !parent.incomplete && (m != nil && !p.o.DeleteOnlyAsked || p.o.DeleteExtraneous)
	if !del {
		p.mu.Lock()
		p.res.Stats.Kept++
		p.mu.Unlock()
		if d.Type == manifest.TypeDir {
			p.stack = append(p.stack, &frame{path: d.Path, incomplete: parent.incomplete})
			p.removeTemps(d.Path)
		}
		p.emit(&slot{dst: d})
		return
	}
	p.item("*deleting  ", d.Path, d.Type, "")
	p.mu.Lock()
	p.res.Stats.Deleted++
	p.mu.Unlock()
	p.deletes = append(p.deletes, d.Path)
	p.dirtyParent()
	if d.Type == manifest.TypeDir {
		p.stack = append(p.stack, &frame{path: d.Path, deleting: true})
	}
}

func (p *pass) handleDir(s, d *manifest.Entry, parent *frame) {
	f := &frame{path: s.Path, want: s, incomplete: s.Incomplete || parent.incomplete}
	if s.Path == "" && p.created {
		d = nil // made by this pass: report it as created, as rsync does
	}
	if d == nil {
		p.item("cd+++++++++", s.Path, s.Type, "")
		p.mu.Lock()
		p.res.Stats.Created++
		p.mu.Unlock()
		f.needMeta = true
		p.dirtyParent()
		if !p.o.DryRun && s.Path != "" {
			dfd, name, err := p.dirs.At(s.Path)
			if err == nil {
				err = p.ready(p.intent(s.Path, manifest.TypeDir))
			}
			if err == nil {
				if err = unix.Mkdirat(dfd, name, 0o700); err == nil {
					made("mkdir", s.Path)
				}
			}
			if err != nil && err != unix.EEXIST {
				p.problem(s.Path, pathErr("mkdir", p.dst.root, s.Path, err), false)
				f.failed = true
			}
		}
	} else {
		code, differs := p.metaFlags(s, d)
		if differs {
			code[0], code[1] = '.', 'd'
			p.item(string(code[:]), s.Path, s.Type, "")
			f.needMeta = true
			p.mu.Lock()
			p.res.Stats.MetaOnly++
			p.mu.Unlock()
		}
		if p.dstScan == nil {
			// Trusted destination manifest: no scan, no leftovers to find.
		} else if temps := p.dstScan.TakeTemps(d.Path); len(temps) > 0 && !p.o.DryRun {
			// Leftovers of a killed pass: remove them, then reset the mtime.
			for _, t := range temps {
				if err := removeAll(p.dirs, t); err == nil {
					p.mu.Lock()
					p.res.Stats.Temps++
					p.mu.Unlock()
				}
			}
			f.dirty = true
		}
		if !p.root && d.Mode&0o700 != 0o700 && !p.o.DryRun {
			// Make our own read-only directory writable for the pass;
			// its mode is restored with the other directory metadata.
			if dfd, name, err := p.dirs.At(s.Path); err == nil && s.Path != "" {
				ownerWritable(dfd, name)
			} else if s.Path == "" {
				ownerWritable(p.dst.root.Fd(), "")
			}
			f.needMeta = true
		}
	}
	p.stack = append(p.stack, f)
	p.emit(&slot{src: s, dst: s})
}

func (p *pass) handleSpecial(s, d *manifest.Entry) {
	leader, done := p.hardLink(s, d)
	if done {
		return
	}
	sl := &slot{src: s}
	if leader != nil {
		leader.slot = sl
	}
	var note string
	if s.Type == manifest.TypeSymlink {
		note = " -> " + s.LinkTarget
	}
	same := d != nil && (s.Type != manifest.TypeSymlink || d.LinkTarget == s.LinkTarget)
	if same && p.keeps(s, d, leader) {
		sl.dst = p.updateMeta(s, d, note)
		p.emit(sl)
		return
	}
	code := "c" + string(typeLetter(s.Type)) + "+++++++++"
	if d != nil {
		code = "c" + string(typeLetter(s.Type)) + "c.t......"
	}
	p.item(code, s.Path, s.Type, note)
	p.mu.Lock()
	p.res.Stats.Created++
	p.mu.Unlock()
	p.dirtyParent()
	var out *manifest.Entry
	if !p.o.DryRun {
		dfd, name, err := p.dirs.At(s.Path)
		if err == nil {
			err = p.ready(p.intent(s.Path, s.Type))
		}
		if err == nil {
			err = p.dst.makeSpecial(dfd, name, s)
		}
		if err != nil {
			p.problem(s.Path, pathErr("create", p.dst.root, s.Path, err), false)
			out = d
		} else {
			made("special", s.Path)
			out = p.lstatDst(s)
		}
	}
	sl.dst = out
	p.emit(sl)
}

// lstatDst returns the destination entry of a path just written.
func (p *pass) lstatDst(s *manifest.Entry) *manifest.Entry {
	dfd, name, err := p.dirs.At(s.Path)
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

// replaced reports that the source file s is another inode than the one
// the last pass recorded (m), with the same size and mtime: a rename over
// it within one timestamp tick, or by a tool that keeps mtimes, which
// rsync's quick check (size and mtime) does not see. Sources that send no
// inode numbers (Inode 0) are not judged.
func replaced(s, m *manifest.Entry) bool {
	return m != nil && m.Type == manifest.TypeFile && s.Inode != 0 && m.Inode != 0 &&
		s.Inode != m.Inode && m.Size == s.Size && m.Mtime == s.Mtime
}

// hardLink handles s, one name of a hard-linked object (any kind but a
// directory, as rsync -H), when an earlier name of its group was handled:
// it is linked to that one's destination, unless already. Otherwise it
// returns s's group, of which s is the leader (nil when s is not linked).
func (p *pass) hardLink(s, d *manifest.Entry) (leader *leaderInfo, done bool) {
	if !s.IsHardlinked() {
		return nil, false
	}
	k := linkKey{s.Dev, s.Inode}
	l := p.leaders[k]
	if l == nil {
		l = &leaderInfo{path: s.Path}
		p.leaders[k] = l
		return l, false
	}
	if d != nil && d.Type == s.Type && l.dstIno != 0 && d.Inode == l.dstIno {
		p.emit(&slot{src: s, leader: l.slot})
		return nil, true
	}
	p.item("h"+string(typeLetter(s.Type))+"+++++++++", s.Path, s.Type, " => "+l.path)
	p.mu.Lock()
	p.res.Stats.HardLinks++
	p.mu.Unlock()
	p.links = append(p.links, pendingLink{target: l.path, path: s.Path, intent: p.intent(s.Path, s.Type)})
	p.dirtyParent()
	p.emit(&slot{src: s, leader: l.slot})
	return nil, true
}

// keeps reports whether the destination object d, current for s, can stay
// as it is as far as hard links go, and then claims it. A linked d must not
// be another path's already (the source rearranged its groups), and a
// symlink, fifo, socket or device is made again when the source no longer
// links it. A regular file the source no longer links keeps its other
// names (splitting them costs a copy, and rsync -H does not either): the
// source's own split gave one name a new inode, which replaced() rewrites.
func (p *pass) keeps(s, d *manifest.Entry, leader *leaderInfo) bool {
	if d.Nlink > 1 && d.Inode != 0 {
		k := linkKey{d.Dev, d.Inode}
		if p.claimed[k] || leader == nil && s.Type != manifest.TypeFile {
			return false
		}
		p.claimed[k] = true
	}
	if leader != nil {
		leader.dstIno = d.Inode
	}
	return true
}

func (p *pass) handleFile(s, d, m *manifest.Entry) {
	leader, done := p.hardLink(s, d)
	if done {
		return
	}
	sl := &slot{src: s, dst: d}
	if leader != nil {
		leader.slot = sl
	}
	immutable := p.rules != nil && p.rules.Immutable(s.Path)
	if d != nil && d.Type == manifest.TypeFile && d.Size == s.Size && (d.Mtime == s.Mtime || immutable) && (immutable || !replaced(s, m)) && p.keeps(s, d, leader) {
		if !s.HasHash && m != nil && m.HasHash && m.Size == s.Size && (immutable || m.Mtime == s.Mtime && m.Inode == s.Inode) {
			s.Hash, s.HasHash = m.Hash, true
		}
		sl.dst = p.updateMeta(s, d, "")
		p.emit(sl)
		return
	}
	code := ">f+++++++++"
	if d != nil {
		c, _ := p.metaFlags(s, d)
		c[0], c[1] = '>', 'f'
		if d.Size != s.Size {
			c[3] = 's'
		}
		code = string(c[:])
	}
	p.item(code, s.Path, s.Type, "")
	p.mu.Lock()
	if d == nil {
		p.res.Stats.Created++
	} else {
		p.res.Stats.Updated++
	}
	p.res.Stats.DataBytes += s.Size
	p.mu.Unlock()
	p.dirtyParent()
	if p.o.Counters != nil {
		p.o.Counters.FilesQueued.Add(1)
		p.o.Counters.BytesQueued.Add(s.Size)
	}
	if p.o.DryRun {
		p.emit(sl)
		return
	}
	j := &fileJob{s: s, d: d, m: m, mode: p.o.Delta, done: make(chan struct{}), intent: p.intent(s.Path, manifest.TypeFile)}
	if p.rules != nil {
		switch {
		case immutable:
			j.mode = DeltaNever
		case p.rules.Growing(s.Path) && p.o.Delta != DeltaNever:
			j.mode = DeltaAlways
		}
		if leader == nil && p.rules.Last(s.Path) && len(p.stack) > 0 {
			j.deferred = true
			top := p.stack[len(p.stack)-1]
			top.last = append(top.last, j)
			sl.job = j
			p.emit(sl)
			return
		}
	}
	sl.job = j
	p.emit(sl)
	p.dispatch(j)
}

// updateMeta brings the metadata of an object whose content is current at
// the destination in line with the source, itemizing what differed. It
// returns the destination's entry as it is afterwards.
func (p *pass) updateMeta(s, d *manifest.Entry, note string) *manifest.Entry {
	code, differs := p.metaFlags(s, d)
	if !differs {
		return d
	}
	code[0], code[1] = '.', typeLetter(s.Type)
	p.item(string(code[:]), s.Path, s.Type, note)
	p.mu.Lock()
	p.res.Stats.MetaOnly++
	p.mu.Unlock()
	if p.o.DryRun {
		return d
	}
	dfd, name, err := p.dirs.At(s.Path)
	if err == nil {
		err = p.dst.setMeta(dfd, name, s)
	}
	if err != nil {
		p.problem(s.Path, pathErr("set metadata", p.dst.root, s.Path, err), false)
		return d
	}
	now := *d
	now.Mode, now.Mtime, now.Xattrs = s.Mode, s.Mtime, s.Xattrs
	if p.o.Owners {
		now.UID, now.GID = s.UID, s.GID
	}
	return &now
}

func (p *pass) applyDirMeta(e *manifest.Entry) error {
	if e.Path == "" {
		return p.dst.setMeta(p.dst.root.Fd(), ".", e)
	}
	dfd, name, err := p.dirs.At(e.Path)
	if err != nil {
		return err
	}
	return p.dst.setMeta(dfd, name, e)
}

// writeManifests consumes the slots in order and hands their entries to
// the recorder.
func (p *pass) writeManifests(rec *Recorder) error {
	// A deferred transfer (Rules.Last) is done only after the merge has
	// left its directory: while one heads the order, later entries wait
	// here instead of stalling the merge.
	var backlog []*slot
	write := func(sl *slot) {
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
		if p.rules != nil && sl.dst != nil && p.rules.Queued(pathOf(sl)) {
			p.queue.Dst++
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
		rec.add(sl.src, sl.base, dst, sl.dbase) // its error is sticky: returned by finish
		// A hard link leader's slot lives on in p.leaders: not its bases.
		sl.base, sl.dbase = nil, nil
	}
	for sl := range p.slots {
		if len(backlog) == 0 && (sl.job == nil || !sl.job.deferred) {
			write(sl)
			continue
		}
		backlog = append(backlog, sl)
		for len(backlog) > 0 && (backlog[0].job == nil || !backlog[0].job.deferred || isDone(backlog[0].job)) {
			write(backlog[0])
			backlog[0] = nil
			backlog = backlog[1:]
		}
	}
	for _, sl := range backlog {
		write(sl)
	}
	return rec.finish()
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
func (p *pass) recheck(ctx context.Context, st *state.Dir) error {
	if p.o.DryRun {
		return nil
	}
	r, err := st.OpenManifest(state.Source)
	if err != nil || r == nil {
		return fmt.Errorf("final re-check: %w", err)
	}
	defer r.Close()
	sc, err := p.src.Scan(ctx, tree.ScanConfig{Exclude: p.o.Exclude, Xattrs: p.xattrNS(), Cache: filepath.Join(st.Path, "src.scan")})
	if err != nil {
		return fmt.Errorf("final re-check: %w", err)
	}
	defer sc.Close()
	err = manifest.Diff(r, sc, func(o, n *manifest.Entry) error {
		if n != nil && p.held[n.Path] || o != nil && p.held[o.Path] {
			return nil // left as it is on purpose; not part of this pass
		}
		switch {
		case o == nil:
			p.moved(n.Path, "appeared")
		case n == nil:
			p.moved(o.Path, "vanished")
		case o.Type != n.Type || o.Size != n.Size || o.Mtime != n.Mtime || o.Ctime != n.Ctime ||
			o.Inode != n.Inode || o.Mode != n.Mode || o.UID != n.UID || o.GID != n.GID || o.LinkTarget != n.LinkTarget:
			if o.Type == manifest.TypeDir && o.Mtime == n.Mtime && o.Mode == n.Mode {
				return nil // a directory's ctime moves with its contents, reported there
			}
			p.moved(n.Path, "changed")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("final re-check: %w", err)
	}
	return nil
}
