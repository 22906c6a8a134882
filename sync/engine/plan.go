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
// contents.
type SourcePlan struct {
	scan, last *manifest.Peeker
	gone       string // the last directory deleted: its contents are not steps
	inGone     bool
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
			return SourceStep{Op: OpCreate, New: s}, nil
		case s == nil || manifest.Compare(s.Path, m.Path) > 0:
			p.last.Take()
			if m.Path == "" || p.inGone && manifest.IsAncestor(p.gone, m.Path) {
				continue // the root stays; below a deleted directory goes with it
			}
			p.gone, p.inGone = m.Path, true
			return SourceStep{Op: OpDelete, Old: m}, nil
		default:
			p.scan.Take()
			p.last.Take()
			return SourceStep{Op: sourceOp(s, m), New: s, Old: m}, nil
		}
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
