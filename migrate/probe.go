package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/msync/msync/sync/class"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
)

// ErrNoState is returned by Probe before a pass committed a source
// manifest to compare with.
var ErrNoState = errors.New("no committed source manifest yet: run msync initial and a catch-up first")

// ProbeOptions say what Probe scans and compares.
type ProbeOptions struct {
	State    string        // the pair's state directory (where its passes record)
	Src, Dst string        // the pair's ends, as a pass is given them
	Class    class.Name    // the dataset's class ("" generic): tells appended mbox tails apart
	MaxAge   time.Duration // a mailman-qfiles dataset's max_age: what the final pass leaves behind
	Exclude  []string      // the pass's filters (the class's are added)
	Remote   Remote
	Stderr   io.Writer // a remote shell's messages
}

// Pending counts paths and bytes of one kind of pending change.
type Pending struct {
	Paths int64 `json:"paths"`
	Bytes int64 `json:"bytes"`
}

// ProbeResult is what is pending now: the source as scanned against the
// last committed source manifest.
type ProbeResult struct {
	Entries  int64 `json:"entries_scanned"`
	SrcBytes int64 `json:"source_bytes"`
	// New paths, changed contents (or types, link targets), appended
	// tails of growing files (their Bytes are the tails), deleted paths
	// (only the top of a deleted subtree) and metadata-only changes.
	New      Pending `json:"new"`
	Changed  Pending `json:"changed"`
	Appended Pending `json:"appended"`
	Deleted  Pending `json:"deleted"`
	Meta     Pending `json:"metadata_only"`
	// Held are files the dataset's class leaves behind (not counted above).
	Held int64 `json:"held,omitempty"`
	// Problems counts the paths the scan could not read (vanished, denied).
	Problems int `json:"scan_problems,omitempty"`
	// CopyBytes are the whole sizes of the files a pass would copy: the
	// unit of the fitted per-byte cost (a pass records a copied file's
	// size, whatever crossed).
	CopyBytes int64         `json:"copy_bytes"`
	Took      time.Duration `json:"-"`
	At        time.Time     `json:"at"`
	Way       string        `json:"way"`
}

// Paths is the number of pending paths of every kind.
func (p *ProbeResult) Paths() int64 {
	return p.New.Paths + p.Changed.Paths + p.Appended.Paths + p.Deleted.Paths + p.Meta.Paths
}

// Probe scans the source of a pair (on its host, over the connection for
// a remote one) and compares it with the last committed source manifest.
// It writes nothing, at DST or in the state directory, and takes no lock:
// a running pass goes on undisturbed. A push keeps its state on DST's host
// (except to stock rsync) and is refused.
func Probe(ctx context.Context, o ProbeOptions) (*ProbeResult, error) {
	r, err := ProbeRoute(o.Src, o.Dst, o.Remote.Rsync)
	if err != nil {
		return nil, err
	}
	// Before connecting: is there a committed manifest to compare with?
	last, err := state.OpenCommitted(o.State, state.Source)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", o.State, err)
	}
	if last == nil {
		return nil, fmt.Errorf("state %s: %w", o.State, ErrNoState)
	}
	last.Close()
	start := time.Now()
	var src engine.Source
	if r.Way == Pull {
		t, err := o.Remote.open(ctx, o.Stderr, r.Src, false)
		if err != nil {
			return nil, err
		}
		defer t.Close()
		s, err := t.Source(ctx, r.Src.Path)
		if err != nil {
			return nil, err
		}
		src = s
	} else {
		l := tree.NewLocal(r.Src.Path)
		defer l.Close()
		src = l
	}
	// No scan cache (Cache): the next pass's remote scan diffs against
	// the one it keeps.
	exclude := append(append([]string(nil), o.Exclude...), o.Class.Excludes()...)
	var rules engine.Rules
	if o.Class != "" {
		rules = o.Class.Rules(class.Config{Final: true, MaxAge: o.MaxAge})
	}
	pend, problems, err := engine.ProbeSource(ctx, src, o.State, exclude, rules)
	if errors.Is(err, engine.ErrNoCommittedSource) {
		err = fmt.Errorf("state %s: %w", o.State, ErrNoState)
	}
	if err != nil {
		return nil, err
	}
	res := fromPending(pend)
	// A live source's files vanish while it is scanned: counted, not fatal.
	res.Problems = problems
	res.At, res.Took, res.Way = time.Now(), time.Since(start), r.Way.String()
	return res, nil
}

// ProbeRoute resolves a pair for Probe, refusing a push whose state is
// kept on DST's host (msync there); a push to stock rsync keeps it here.
func ProbeRoute(src, dst string, rsync bool) (Route, error) {
	r, err := Resolve(src, dst, rsync)
	if err != nil {
		return Route{}, err
	}
	if r.Way == Push && CapabilitiesOf(r.Dst.Kind).KeepsState {
		return Route{}, usage("--probe: a push to %s keeps its state on DST's host, where this host's scan of SRC cannot be compared with it; run msync estimate --probe there, with SRC as the remote end", kindName(r.Dst.Kind))
	}
	return r, nil
}

// fromPending is the probe's record of what CountPending found.
func fromPending(p *engine.Pending) *ProbeResult {
	k := func(c engine.PendingKind) Pending { return Pending{Paths: c.Paths, Bytes: c.Bytes} }
	return &ProbeResult{Entries: p.Entries, SrcBytes: p.SrcBytes, New: k(p.New), Changed: k(p.Changed), Appended: k(p.Appended),
		Deleted: k(p.Deleted), Meta: k(p.Meta), Held: p.Held, CopyBytes: p.CopyBytes}
}
