package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
)

// PendingKind counts the paths and bytes of one kind of pending change.
type PendingKind struct {
	Paths, Bytes int64
}

// Pending is what a pass would find to do now: a source scan against the
// last committed source manifest, counted by kind.
type Pending struct {
	Entries  int64 // source entries scanned
	SrcBytes int64 // sum of the source's file sizes
	// New paths, changed contents (or types, link targets), appended
	// tails of growing files (Bytes: the tails), deleted paths (only the
	// top of a deleted subtree, as the pass counts them) and
	// metadata-only changes (a directory whose mtime moved with its
	// contents among them, as the pass counts it).
	New, Changed, Appended, Deleted, Meta PendingKind
	// Held are source files the rules leave as they are this pass
	// (Rules.Hold, asked without neighbours: rules that need them hold
	// only outside a final pass); not counted above.
	Held int64
	// CopyBytes are the whole sizes of the files a pass would copy, the
	// unit of its record's data bytes (a copied file counts its size,
	// whatever crossed).
	CopyBytes int64
}

// Paths is the number of pending paths of every kind.
func (p *Pending) Paths() int64 {
	return p.New.Paths + p.Changed.Paths + p.Appended.Paths + p.Deleted.Paths + p.Meta.Paths
}

// CountPending merges a source scan with the last committed source
// manifest (PlanSource) and counts each path's change by kind; rules (nil
// for none) say which files grow by appending. It holds one entry of each
// stream at a time.
func CountPending(scan, last manifest.Iterator, rules Rules) (*Pending, error) {
	res := &Pending{}
	p := PlanSource(scan, last)
	for {
		st, err := p.Next()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		n, m := st.New, st.Old
		if n != nil {
			res.Entries++
			if n.Type == manifest.TypeFile {
				res.SrcBytes += n.Size
			}
		}
		file := n != nil && n.Type == manifest.TypeFile
		if file && rules != nil && (st.Op == OpCreate || st.Op == OpUpdate || st.Op == OpMeta) &&
			(m == nil || m.Type == manifest.TypeFile) && rules.Hold(n, "", "") != "" {
			res.Held++
			continue
		}
		switch st.Op {
		case OpCreate:
			res.New.Paths++
			if file {
				res.New.Bytes += n.Size
				res.CopyBytes += n.Size
			}
		case OpUpdate:
			if n.Type == manifest.TypeDir && m.Type == manifest.TypeDir {
				res.Meta.Paths++ // a directory's mtime moves with its contents
				break
			}
			if file && m.Type == manifest.TypeFile && rules != nil && rules.Growing(n.Path) && n.Size > m.Size {
				res.Appended.Paths++
				res.Appended.Bytes += n.Size - m.Size
			} else {
				res.Changed.Paths++
				if file {
					res.Changed.Bytes += n.Size
				}
			}
			if file {
				res.CopyBytes += n.Size
			}
		case OpMeta:
			res.Meta.Paths++
		case OpDelete:
			res.Deleted.Paths++
			if m.Type == manifest.TypeFile {
				res.Deleted.Bytes += m.Size
			}
		}
	}
}

// ErrNoCommittedSource is what ProbeSource returns when the state
// directory has no committed source manifest yet.
var ErrNoCommittedSource = errors.New("no committed source manifest")

// ProbeSource counts what is pending now at src against the state
// directory's last committed source manifest, writing nothing and taking
// no lock: src is scanned with the xattr namespaces the manifest was
// written with (others would make every path a metadata change) and the
// manifest again as a local scan's hash cache, as a pass does. exclude
// and rules (nil for none) are the pass's. It returns the counts and how
// many paths the scan could not read (a live source's files vanish).
func ProbeSource(ctx context.Context, src Source, stateDir string, exclude []string, rules Rules) (*Pending, int, error) {
	open := func() (*manifest.FileReader, error) {
		r, err := state.OpenCommitted(stateDir, state.Source)
		if err == nil && r == nil {
			err = ErrNoCommittedSource
		}
		if err != nil {
			return nil, fmt.Errorf("state %s: %w", stateDir, err)
		}
		return r, nil
	}
	last, err := open()
	if err != nil {
		return nil, 0, err
	}
	defer last.Close()
	prev, err := open()
	if err != nil {
		return nil, 0, err
	}
	defer prev.Close()
	sc, err := src.Scan(ctx, tree.ScanConfig{Exclude: exclude, Xattrs: state.RecordedXattrs(stateDir), Prev: prev})
	if err != nil {
		return nil, 0, fmt.Errorf("scan source %s: %w", src, err)
	}
	defer sc.Close()
	p, err := CountPending(sc, last, rules)
	return p, len(sc.Problems()), err
}
