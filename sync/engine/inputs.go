package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
)

// inputs are what a pass reads: the destination made and locked, the
// last committed manifests (and what killed passes left), and the two
// scans, started. The planner merges src, dst and old.
type inputs struct {
	dstExists bool
	created   bool // this pass created the destination's root
	// srcCache and dstCache are the last manifests as the scanners'
	// hash caches (manifest.Empty: none).
	srcCache, dstCache manifest.Iterator
	// interrupted and journals are what killed passes left: the pending
	// manifests and journals of what they may have put at DST.
	interrupted, journals []string
	old                   manifest.Iterator // what msync put at DST, in manifest order
	src                   tree.Scan
	dst                   manifest.Iterator // the destination's scan, or its trusted manifest
	dstScan               *scan.Scanner     // nil when trusted or when DST does not exist
	trusted               bool
	ns                    []string // the xattr namespaces the pass reads
	freshXattrs           bool     // the last manifests hold other xattrs: read them again
	tag                   string   // the migration's temp tag
	// The recorder's bases (manifest.Keeper): srcBase and dstBase reopen
	// the last manifests (nil: not kept); oldDst walks the destination's
	// beside its scan.
	srcBase, dstBase func() (manifest.Iterator, func(), error)
	oldDst           *manifest.Peeker
}

// openInputs opens what the pass reads; p.closeAll releases it.
func (p *pass) openInputs(ctx context.Context, st *state.Dir) (*inputs, error) {
	in := &inputs{}
	// The state directory is checked before anything is made at DST.
	if err := p.bind(st); err != nil {
		return nil, err
	}
	if err := p.prepareDest(st, in); err != nil {
		return nil, err
	}
	if err := p.openManifests(st, in); err != nil {
		return nil, err
	}
	if err := p.startScans(ctx, st, in); err != nil {
		return nil, err
	}
	return in, nil
}

// prepareDest makes the destination's root if need be, locks it, and
// binds the state directory to the pair again when the pass made it.
func (p *pass) prepareDest(st *state.Dir, in *inputs) error {
	o := &p.o
	in.dstExists = true
	if o.DstRoot != nil || o.DstCreated {
		if o.DstRoot == nil && !o.DryRun {
			return errors.New("destination: created but not open")
		}
		in.dstExists, in.created = o.DstRoot != nil, o.DstCreated
	} else if _, err := os.Lstat(o.Dst); errors.Is(err, os.ErrNotExist) {
		in.dstExists = false
		if !o.DryRun {
			if err := os.MkdirAll(o.Dst, 0o700); err != nil {
				return fmt.Errorf("create destination: %w", err)
			}
			in.dstExists = true
		}
		in.created = true
	} else if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if in.dstExists {
		unlock, err := lockDest(o.Dst, o.DstRoot, o.Log)
		if err != nil {
			return err
		}
		p.later(unlock)
	}
	if in.created && in.dstExists {
		// Its pair now names the directory made, file system and inode.
		return p.bind(st)
	}
	return nil
}

// openManifest opens a side's last committed manifest (manifest.Empty
// when there is none).
func (p *pass) openManifest(st *state.Dir, side state.Side) (manifest.Iterator, error) {
	r, err := st.OpenManifest(side)
	if err != nil {
		return nil, fmt.Errorf("state: %w (remove it to start over with msync initial)", err)
	}
	if r == nil {
		return manifest.Empty, nil
	}
	p.later(func() { r.Close() })
	return r, nil
}

// reopen returns a function that opens a side's committed manifest again
// from its start (manifest.Keeper's base).
func reopen(st *state.Dir, side state.Side) func() (manifest.Iterator, func(), error) {
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

// openManifests opens the last manifests and what killed passes left, and
// joins into in.old what msync put at the destination.
func (p *pass) openManifests(st *state.Dir, in *inputs) error {
	o := &p.o
	var err error
	if in.srcCache, err = p.openManifest(st, state.Source); err != nil {
		return err
	}
	hadSrc := in.srcCache != manifest.Empty
	if in.dstCache, err = p.openManifest(st, state.Dest); err != nil {
		return err
	}
	// What msync put at the destination: the last committed source manifest,
	// plus whatever killed passes recorded in their pending manifests.
	if o.DryRun {
		in.interrupted = st.Unsettled()
	} else if in.interrupted, err = st.TakeInterrupted(); err != nil {
		return err
	}
	// And the names they journaled before making them visible.
	in.journals = st.Journals()
	if !o.DryRun {
		if in.journals, err = st.TakeJournals(); err != nil {
			return err
		}
	}
	if len(in.interrupted) > 0 || len(in.journals) > 0 || st.Interrupted() {
		fmt.Fprintln(o.Log, "msync: the previous pass was interrupted; this pass completes it")
	}
	if o.Kind == Catchup && hadSrc && len(in.interrupted) == 0 && len(in.journals) == 0 && !o.DryRun {
		// The merge's old entries are the committed manifest's alone.
		in.srcBase = reopen(st, state.Source)
	}
	olds, ahead, err := p.lastSource(st, in, hadSrc)
	if err != nil {
		return err
	}
	// An initial pass, too, deletes what killed passes put at DST and
	// the source no longer has.
	for _, path := range in.interrupted {
		r, err := manifest.Open(path)
		if err != nil {
			continue // a pass killed before it wrote a header
		}
		p.later(func() { r.Close() })
		olds = append(olds, manifest.Prefix{It: r})
	}
	js, closeJ, err := attributed(in.journals)
	if err != nil {
		return err
	}
	p.later(closeJ)
	in.old = manifest.Empty
	if olds = append(olds, js...); len(olds) > 0 {
		u := manifest.ReadAhead(manifest.Union(olds...), ahead)
		p.later(func() { u.Close() })
		in.old = u
	}
	return nil
}

// lastSource returns the last committed source manifest as the merge's
// old entries (none for a first initial pass), and how far to decode
// ahead of the merge.
func (p *pass) lastSource(st *state.Dir, in *inputs, hadSrc bool) ([]manifest.Iterator, int, error) {
	// Decoded beside the scans: a remote source's file list takes a
	// while to arrive, and the merge then finds the manifest ready.
	ahead := 64 << 10
	if p.o.Kind != Catchup && !hadSrc {
		return nil, ahead, nil
	}
	if p.o.Kind == Catchup && p.local != nil && in.srcCache != manifest.Empty {
		// One decoding of the last source manifest serves both the local
		// scanner's hash cache and the merge below, each at its pace.
		// Both follow the local scan, so decoding far ahead of it only
		// grows the heap (the Tee keeps what the merge's read-ahead has
		// taken until the scanner passes it): 4k entries.
		ahead = 4 << 10
		dec := manifest.ReadAhead(in.srcCache, ahead)
		p.later(func() { dec.Close() })
		cache, merge := manifest.Tee(dec)
		in.srcCache = cache
		return []manifest.Iterator{merge}, ahead, nil
	}
	// A catch-up from a remote source, or an initial pass run again over
	// a pair's state: what the last committed pass put at DST is still
	// msync's, and goes when the source no longer has it.
	it, err := p.openManifest(st, state.Source)
	if err != nil {
		return nil, 0, err
	}
	return []manifest.Iterator{it}, ahead, nil
}

// startScans starts the destination's scan (or opens its trusted
// manifest) and then the source's.
func (p *pass) startScans(ctx context.Context, st *state.Dir, in *inputs) error {
	o := &p.o
	var err error
	if in.tag, err = st.TempTag(); err != nil {
		return err
	}
	in.ns = p.xattrNS()
	// Manifests that hold other xattrs than this pass reads (older state,
	// another user, --no-xattrs) cannot stand in for a read of them.
	in.freshXattrs = !st.XattrsMatch(in.ns)
	in.dst = manifest.Empty
	if o.TrustDest && in.dstExists {
		if err := p.trustDest(st, in); err != nil {
			return err
		}
	}
	if in.dstExists && !in.trusted {
		prev := in.dstCache
		if in.dstCache != manifest.Empty && !o.DryRun {
			// One decoding of the last destination manifest serves the
			// scanner's cache and the writer's base (manifest.Keeper),
			// as on the source side.
			dec := manifest.ReadAhead(in.dstCache, 4<<10)
			p.later(func() { dec.Close() })
			cache, base := manifest.Tee(dec)
			prev, in.oldDst = cache, manifest.NewPeeker(base)
			in.dstBase = reopen(st, state.Dest)
		}
		in.dstScan, err = scan.Start(ctx, scan.Config{Root: o.Dst, Dir: o.DstRoot, Exclude: p.exclude, Xattrs: in.ns, Prev: prev, FreshXattrs: in.freshXattrs, OwnTemp: ownTemp(in.tag)})
		if err != nil {
			return fmt.Errorf("scan destination: %w", err)
		}
		p.later(func() { in.dstScan.Close() })
		in.dst = in.dstScan
	}
	// The source's scan starts after the destination's: a remote source
	// may still be connecting, and the destination scan goes on meanwhile.
	in.src, err = p.src.Scan(ctx, tree.ScanConfig{Exclude: o.Exclude, Xattrs: in.ns, Prev: in.srcCache, FreshXattrs: in.freshXattrs, Cache: filepath.Join(st.Path, "src.scan")})
	if err != nil {
		return fmt.Errorf("scan source %s: %w", p.src, err)
	}
	p.later(func() { in.src.Close() })
	return nil
}

// trustDest takes the destination's last manifest for its scan
// (--trust-dest) when it can stand in for one.
func (p *pass) trustDest(st *state.Dir, in *inputs) error {
	o := &p.o
	switch {
	case o.Kind != Catchup:
		fmt.Fprintln(o.Log, "msync: --trust-dest applies to catch-up passes; scanning the destination")
	case st.Interrupted():
		fmt.Fprintln(o.Log, "msync: the previous pass was interrupted; scanning the destination instead of trusting its manifest")
	case in.freshXattrs:
		fmt.Fprintln(o.Log, "msync: the last pass recorded other extended attributes; scanning the destination instead of trusting its manifest")
	default:
		it, err := p.openManifest(st, state.Dest)
		if err != nil {
			return err
		}
		if it != manifest.Empty {
			in.dst, in.trusted = it, true
			if !o.DryRun {
				in.dstBase = reopen(st, state.Dest)
			}
		}
	}
	return nil
}

// openRoots opens the destination's root for the applier and, for a
// source on this host, the source's.
func (p *pass) openRoots(in *inputs) (dst, src *fsx.Root, err error) {
	if in.dstExists {
		if p.o.DstRoot != nil {
			dst, err = p.o.DstRoot.Dup()
		} else {
			dst, err = fsx.OpenRoot(p.o.Dst)
		}
		if err != nil {
			return nil, nil, err
		}
		p.later(func() { dst.Close() })
	}
	if p.local != nil {
		if src, err = p.local.OpenRoot(); err != nil {
			return nil, nil, err
		}
		p.later(func() { src.Close() })
	}
	return dst, src, nil
}
