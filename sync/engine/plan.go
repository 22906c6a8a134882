package engine

import (
	"fmt"
	"io"

	"github.com/msync/msync/manifest"
)

// Op is what the planner decided for one path.
type Op uint8

// The planner's decisions.
const (
	OpKeep   Op = iota // nothing to do: the destination is current
	OpCreate           // new at the destination
	OpUpdate           // the content (or the type, or a link target) changed
	OpMeta             // only metadata changed (mode, mtime, owners, xattrs)
	OpDelete           // gone from the source
)

var opNames = [...]string{OpKeep: "keep", OpCreate: "create", OpUpdate: "update", OpMeta: "meta", OpDelete: "delete"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", o)
}

// SourceStep is one path of a SourcePlan.
type SourceStep struct {
	Op  Op
	New *manifest.Entry // the scan's entry; nil for OpDelete
	Old *manifest.Entry // the last committed manifest's entry; nil for OpCreate
}

// Path returns the step's path.
func (s SourceStep) Path() string {
	if s.New != nil {
		return s.New.Path
	}
	return s.Old.Path
}

// SourcePlan is the planner for a pass that does not scan the
// destination: it merges a source scan with the last committed source
// manifest, both in manifest order, and says per path what changed since
// that manifest. It holds one entry of each stream at a time.
//
// A push to stock rsync uses it so: every step but OpDelete is an entry
// of the new source (for the file list, the itemized changes, and
// Recorder.Add in the same order); an OpDelete step is a path msync put
// at the destination that the source no longer has. Only the topmost path
// of a deleted subtree is given: the receiver deletes a directory with its
// contents. Nothing below a directory the scan could not read completely
// (manifest.Entry.Incomplete) is deleted: what it misses may still be there.
type SourcePlan struct {
	scan, last *manifest.Peeker
	gone       string // the last directory deleted: its contents are not steps
	inGone     bool
	partial    string // the last directory read incompletely: nothing below it is deleted
	inPartial  bool
}

// PlanSource returns the plan of scan (the new source) against last (the
// last committed source manifest; manifest.Empty when there is none).
func PlanSource(scan, last manifest.Iterator) *SourcePlan {
	return &SourcePlan{scan: manifest.NewPeeker(scan), last: manifest.NewPeeker(last)}
}

// Next returns the next step, or io.EOF after the last.
func (p *SourcePlan) Next() (SourceStep, error) {
	for {
		s, err := p.scan.Peek()
		if err != nil {
			return SourceStep{}, fmt.Errorf("scan source: %w", err)
		}
		m, err := p.last.Peek()
		if err != nil {
			return SourceStep{}, fmt.Errorf("source manifest: %w", err)
		}
		switch {
		case s == nil && m == nil:
			return SourceStep{}, io.EOF
		case m == nil || s != nil && manifest.Compare(s.Path, m.Path) < 0:
			p.scan.Take()
			p.scanned(s)
			return SourceStep{Op: OpCreate, New: s}, nil
		case s == nil || manifest.Compare(s.Path, m.Path) > 0:
			p.last.Take()
			if m.Path == "" || p.inGone && manifest.IsAncestor(p.gone, m.Path) || p.inPartial && manifest.IsAncestor(p.partial, m.Path) {
				continue // the root stays; below a deleted directory goes with it; below a partial one, unknown
			}
			p.gone, p.inGone = m.Path, true
			return SourceStep{Op: OpDelete, Old: m}, nil
		default:
			p.scan.Take()
			p.last.Take()
			p.scanned(s)
			return SourceStep{Op: sourceOp(s, m), New: s, Old: m}, nil
		}
	}
}

// scanned notes a directory of the scan read incompletely, unless it is
// below one already.
func (p *SourcePlan) scanned(s *manifest.Entry) {
	if s.Type == manifest.TypeDir && s.Incomplete && !(p.inPartial && manifest.IsAncestor(p.partial, s.Path)) {
		p.partial, p.inPartial = s.Path, true
	}
}

// sourceOp compares a source entry with the last committed one at its
// path: OpUpdate when the content may differ (rsync's quick check: type,
// size, mtime; a link target, a device number; another inode with the same
// size and mtime, see replaced), OpMeta when only metadata does.
func sourceOp(s, m *manifest.Entry) Op {
	switch {
	case s.Type != m.Type || s.Size != m.Size || s.Mtime != m.Mtime || s.LinkTarget != m.LinkTarget ||
		s.Rdev != m.Rdev || replaced(s, m):
		return OpUpdate
	case s.Mode != m.Mode || s.UID != m.UID || s.GID != m.GID || !manifest.XattrsEqual(s.Xattrs, m.Xattrs):
		return OpMeta
	}
	return OpKeep
}

// The pass's planner merges three ordered streams, the source scan, the
// destination's scan (or its trusted manifest) and the last committed
// manifests, and decides per path what to do: an action. It touches no
// disk and starts no goroutine; it hands each action to its sink (the
// pass, which itemizes, counts, applies and records it) and reads back
// the few outcomes that change its course: a directory that could not be
// made or replaced (its contents are skipped), leftover temps removed (the
// directory's mtime is set again).

// act is the kind of an action.
type act uint8

const (
	actKeep    act = iota // s is current at the destination (d); a directory's leftovers go
	actMeta               // only metadata differs: set now (a directory's after its contents)
	actCreate             // make the directory, symlink, fifo, socket or device s (d: what was there)
	actCopy               // copy the file s: new, or over d
	actLink               // hard-link s to its group's leader once every file is written
	actLinked             // s is linked to its leader at the destination already
	actDelete             // remove d once every add is done
	actReplace            // remove d now: the source has another type there (s's own action follows)
	actExtra              // d stays without a source entry (not msync's, or no --delete)
	actHold               // the class's rules leave s alone this pass (why)
	actSkip               // s cannot be made (why)
	actOrphan             // s is below a directory that could not be made: recorded only
	actFixup              // set a directory's metadata (s) after its contents
	actRelease            // start the copies deferred to the end of a directory (Rules.Last)
)

var actNames = [...]string{actKeep: "keep", actMeta: "meta", actCreate: "create", actCopy: "copy", actLink: "link",
	actLinked: "linked", actDelete: "delete", actReplace: "replace", actExtra: "extra", actHold: "hold",
	actSkip: "skip", actOrphan: "orphan", actFixup: "fixup", actRelease: "release"}

func (a act) String() string { return actNames[a] }

// action is one decision of the planner.
type action struct {
	op      act
	s, d, m *manifest.Entry // source, destination, last manifest at the path
	why     string          // actHold, actSkip: the reason
	// count: the first action of a source entry, which Stats count.
	count bool
	// group is the hard-link group s leads; leader the one s joins
	// (actLink, actLinked).
	group, leader *linkGroup
	mode          DeltaMode // actCopy: how to copy
	last          bool      // actCopy: deferred to the end of its directory (Rules.Last)
	unlock        bool      // actKeep, actMeta of a directory: make it writable for the pass
	deferred      []*action // actRelease: the deferred copies

	// Outcomes, set by the applier.
	err   error           // actCreate of a directory, actReplace: it failed
	out   *manifest.Entry // the destination's entry afterwards
	dirty bool            // a directory's leftover temps were removed
	job   *fileJob        // actCopy: the transfer
}

// frame is a destination directory the merge is inside of.
type frame struct {
	path       string
	want       *manifest.Entry // source entry; nil when the source has no such directory
	dirty      bool            // its contents changed: the mtime must be set again
	needMeta   bool
	incomplete bool // the source directory could not be read completely
	deleting   bool // the destination directory is being removed with its contents
	failed     bool // could not be created: its contents are skipped
	// last are the copies of files the class writes after the others of
	// this directory (Rules.Last): released when the frame is closed.
	last []*action
}

type linkKey struct{ dev, ino uint64 }

// linkGroup is a hard-linked source object, by its first name (the leader).
type linkGroup struct {
	path   string
	dstIno uint64 // destination inode when the leader is not rewritten
	slot   *slot  // the leader's manifest slot (set by the recorder's feed)
}

// planConfig is what the planner knows of the pass.
type planConfig struct {
	rules            Rules // nil: no class rules
	meta             metaCheck
	root             bool // running as root: device nodes can be made
	created          bool // the pass created the destination's root
	dryRun           bool
	deleteExtraneous bool
	deleteOnlyAsked  bool
	delta            DeltaMode
	counters         *Counters // nil: no progress counters
}

// row is one path of the merge, with each stream's entry there (or nil).
type row struct {
	path    string
	s, d, m *manifest.Entry
}

type planner struct {
	c                planConfig
	sink             func(*action)
	src, dst, last   *manifest.Peeker
	stack            []*frame
	leaders          map[linkKey]*linkGroup
	claimed          map[linkKey]bool // linked destination objects a path kept (keeps)
	prevSrc, nextSrc string           // the source paths around the current one, when rules ask
	fresh            bool             // the next action is the first of its source entry
}

func newPlanner(c planConfig, src, dst, last manifest.Iterator, sink func(*action)) *planner {
	return &planner{c: c, sink: sink, src: manifest.NewPeeker(src), dst: manifest.NewPeeker(dst),
		last: manifest.NewPeeker(last), leaders: map[linkKey]*linkGroup{}, claimed: map[linkKey]bool{}}
}

// next takes the next path of the merge; ok is false after the last.
func (p *planner) next() (r row, ok bool, err error) {
	s, err := p.src.Peek()
	if err != nil {
		return r, false, fmt.Errorf("scan source: %w", err)
	}
	d, err := p.dst.Peek()
	if err != nil {
		return r, false, fmt.Errorf("scan destination: %w", err)
	}
	m, err := p.last.Peek()
	if err != nil {
		return r, false, err
	}
	if r.path, ok = minPath(s, d, m); !ok {
		return r, false, nil
	}
	if s != nil && s.Path == r.path {
		p.src.Take()
		r.s = s
		if p.c.rules != nil && s.Type == manifest.TypeFile {
			p.nextSrc = ""
			if n, err := p.src.Peek(); err == nil && n != nil {
				p.nextSrc = n.Path
			}
		}
		if p.c.counters != nil {
			p.c.counters.Scanned.Add(1)
		}
	}
	if d != nil && d.Path == r.path {
		p.dst.Take()
		r.d = d
	}
	if m != nil && m.Path == r.path {
		p.last.Take()
		r.m = m
	}
	return r, true, nil
}

// done notes that the merge left r.
func (p *planner) done(r row) {
	if r.s != nil {
		// path, not s.Path: a worker may already be rewriting *s
		// (a file that changed since the scan).
		p.prevSrc = r.path
	}
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

// emit hands a to the sink and returns it with its outcomes.
func (p *planner) emit(a *action) *action {
	a.count, p.fresh = p.fresh, false
	p.sink(a)
	return a
}

// popTo closes the directory frames that are not ancestors of path
// ("\x00": all of them, the root last).
func (p *planner) popTo(path string) {
	for len(p.stack) > 0 {
		top := p.stack[len(p.stack)-1]
		if path != "\x00" && manifest.IsAncestor(top.path, path) {
			return
		}
		p.stack = p.stack[:len(p.stack)-1]
		if top.want != nil && !top.failed && (top.dirty || top.needMeta) {
			p.emit(&action{op: actFixup, s: top.want})
		}
		if len(top.last) > 0 {
			p.emit(&action{op: actRelease, deferred: top.last})
		}
	}
}

func (p *planner) top() *frame {
	if len(p.stack) == 0 {
		return &frame{}
	}
	return p.stack[len(p.stack)-1]
}

func (p *planner) push(f *frame) { p.stack = append(p.stack, f) }

func (p *planner) dirtyParent() {
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

// step decides what to do at one path: s, d and m are the source's,
// the destination's and the last manifests' entries there (each may be nil).
func (p *planner) step(s, d, m *manifest.Entry) {
	p.fresh = false
	parent := p.top()
	if parent.deleting || parent.failed {
		if d != nil && d.Type == manifest.TypeDir {
			p.push(&frame{path: d.Path, deleting: parent.deleting, failed: parent.failed})
		}
		if s != nil && parent.failed {
			p.emit(&action{op: actOrphan, s: s})
		}
		return
	}
	if s == nil {
		p.gone(d, m, parent)
		return
	}
	p.fresh = true
	if p.c.rules != nil && s.Type == manifest.TypeFile && (d == nil || d.Type == manifest.TypeFile) {
		if why := p.c.rules.Hold(s, p.prevSrc, p.nextSrc); why != "" {
			// What msync put there before (m) stays its to delete later.
			p.emit(&action{op: actHold, s: s, d: d, m: m, why: why})
			return
		}
	}
	if (s.Type == manifest.TypeChar || s.Type == manifest.TypeBlock) && !p.c.root {
		p.emit(&action{op: actSkip, s: s, d: d, why: "device nodes need root"})
		return
	}
	if d != nil && !sameType(s, d) {
		if a := p.emit(&action{op: actReplace, s: s, d: d}); a.err != nil {
			if d.Type == manifest.TypeDir {
				p.push(&frame{path: d.Path, failed: true})
			}
			return
		}
		if d.Type == manifest.TypeDir && s.Type != manifest.TypeDir {
			// Its contents follow in the destination scan: already gone.
			gone := d.Path
			defer func() { p.push(&frame{path: gone, deleting: true}) }()
		}
		d = nil
		p.dirtyParent()
	}
	switch s.Type {
	case manifest.TypeDir:
		p.dir(s, d, parent)
	case manifest.TypeFile:
		p.file(s, d, m)
	default:
		p.special(s, d)
	}
}

// gone decides for a destination path d the source no longer has: msync's
// (m: the last pass recorded it) or any with --delete goes, unless the
// source directory above was read incompletely.
func (p *planner) gone(d, m *manifest.Entry, parent *frame) {
	if d == nil {
		return // only in the old manifest: already gone at both ends
	}
	del := !parent.incomplete && (m != nil && !p.c.deleteOnlyAsked || p.c.deleteExtraneous)
	if !del {
		if d.Type == manifest.TypeDir {
			p.push(&frame{path: d.Path, incomplete: parent.incomplete})
		}
		p.emit(&action{op: actExtra, d: d})
		return
	}
	p.emit(&action{op: actDelete, d: d})
	p.dirtyParent()
	if d.Type == manifest.TypeDir {
		p.push(&frame{path: d.Path, deleting: true})
	}
}

func (p *planner) dir(s, d *manifest.Entry, parent *frame) {
	f := &frame{path: s.Path, want: s, incomplete: s.Incomplete || parent.incomplete}
	if s.Path == "" && p.c.created {
		d = nil // made by this pass: report it as created, as rsync does
	}
	if d == nil {
		f.needMeta = true
		p.dirtyParent()
		f.failed = p.emit(&action{op: actCreate, s: s}).err != nil
	} else {
		a := &action{op: actKeep, s: s, d: d}
		if _, differs := p.c.meta.flags(s, d); differs {
			a.op, f.needMeta = actMeta, true
		}
		if !p.c.root && d.Mode&0o700 != 0o700 && !p.c.dryRun {
			// Our own read-only directory is made writable for the pass;
			// its mode is restored with the other directory metadata.
			a.unlock, f.needMeta = true, true
		}
		f.dirty = p.emit(a).dirty
	}
	p.push(f)
}

func (p *planner) special(s, d *manifest.Entry) {
	group, done := p.hardLink(s, d)
	if done {
		return
	}
	same := d != nil && (s.Type != manifest.TypeSymlink || d.LinkTarget == s.LinkTarget)
	if same && p.keeps(s, d, group) {
		p.emit(p.current(s, d, group))
		return
	}
	p.dirtyParent()
	p.emit(&action{op: actCreate, s: s, d: d, group: group})
}

// current is the action for an object whose content is current at the
// destination: its metadata may differ.
func (p *planner) current(s, d *manifest.Entry, group *linkGroup) *action {
	a := &action{op: actKeep, s: s, d: d, group: group}
	if _, differs := p.c.meta.flags(s, d); differs {
		a.op = actMeta
	}
	return a
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
func (p *planner) hardLink(s, d *manifest.Entry) (group *linkGroup, done bool) {
	if !s.IsHardlinked() {
		return nil, false
	}
	k := linkKey{s.Dev, s.Inode}
	l := p.leaders[k]
	if l == nil {
		l = &linkGroup{path: s.Path}
		p.leaders[k] = l
		return l, false
	}
	if d != nil && d.Type == s.Type && l.dstIno != 0 && d.Inode == l.dstIno {
		p.emit(&action{op: actLinked, s: s, leader: l})
		return nil, true
	}
	p.dirtyParent()
	p.emit(&action{op: actLink, s: s, leader: l})
	return nil, true
}

// keeps reports whether the destination object d, current for s, can stay
// as it is as far as hard links go, and then claims it. A linked d must not
// be another path's already (the source rearranged its groups), and a
// symlink, fifo, socket or device is made again when the source no longer
// links it. A regular file the source no longer links keeps its other
// names (splitting them costs a copy, and rsync -H does not either): the
// source's own split gave one name a new inode, which replaced() rewrites.
func (p *planner) keeps(s, d *manifest.Entry, group *linkGroup) bool {
	if d.Nlink > 1 && d.Inode != 0 {
		k := linkKey{d.Dev, d.Inode}
		if p.claimed[k] || group == nil && s.Type != manifest.TypeFile {
			return false
		}
		p.claimed[k] = true
	}
	if group != nil {
		group.dstIno = d.Inode
	}
	return true
}

func (p *planner) file(s, d, m *manifest.Entry) {
	group, done := p.hardLink(s, d)
	if done {
		return
	}
	immutable := p.c.rules != nil && p.c.rules.Immutable(s.Path)
	if d != nil && d.Type == manifest.TypeFile && d.Size == s.Size && (d.Mtime == s.Mtime || immutable) && (immutable || !replaced(s, m)) && p.keeps(s, d, group) {
		if !s.HasHash && m != nil && m.HasHash && m.Size == s.Size && (immutable || m.Mtime == s.Mtime && m.Inode == s.Inode) {
			s.Hash, s.HasHash = m.Hash, true
		}
		p.emit(p.current(s, d, group))
		return
	}
	p.dirtyParent()
	a := &action{op: actCopy, s: s, d: d, m: m, group: group, mode: p.c.delta}
	if p.c.rules != nil && !p.c.dryRun {
		switch {
		case immutable:
			a.mode = DeltaNever
		case p.c.rules.Growing(s.Path) && p.c.delta != DeltaNever:
			a.mode = DeltaAlways
		}
		if group == nil && p.c.rules.Last(s.Path) && len(p.stack) > 0 {
			a.last = true
			top := p.stack[len(p.stack)-1]
			top.last = append(top.last, a)
		}
	}
	p.emit(a)
}
