package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// tally is the pass's Result as its stages fill it in: the planner's
// decisions (count), the applier's and the workers' problems and bytes.
type tally struct {
	mu       sync.Mutex // guards everything below but the fields set before the pass
	res      *record.Result
	log      io.Writer
	rules    Rules // nil: no class rules
	final    bool
	counters *Counters // nil: no progress counters
	stop     context.CancelCauseFunc
	queueSrc int64 // Rules.Queued source paths
	// notQuiet: source paths that moved during the pass, once each.
	notQuiet  []string
	movedSeen map[string]bool
	// held: source paths the rules left alone; the final re-check
	// ignores them.
	held map[string]bool
	// copying and work sum the workers' time moving bytes and on files
	// as a whole (record.PhaseTimes.Copy and Work).
	copying, work time.Duration
}

// maxHeldLogged is how many entries left alone by a class's rules a pass
// names in its log; the result lists them all.
const maxHeldLogged = 5

// errStopped wraps what made a pass stop on its own (a full file system).
var errStopped = errors.New("pass stopped")

// interrupted says why the pass ended early.
func interrupted(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, errStopped) {
		return cause
	}
	return fmt.Errorf("pass interrupted: %w", ctx.Err())
}

func (t *tally) problem(path string, err error, vanished bool) {
	if vanished && t.rules != nil && t.rules.Transient(path) {
		t.note(path, "vanished during the pass (normal for "+t.rules.Class()+")")
		return
	}
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		// Every file after this one would fail the same way: stop, commit
		// nothing; what is in place stays, the next pass completes it.
		t.stop(fmt.Errorf("%w: %w; free space at the destination and run the pass again", errStopped, err))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.res.Problems = append(t.res.Problems, record.Problem{Path: path, Err: err.Error(), Vanished: vanished})
	if vanished {
		t.res.Stats.Vanished++
	} else {
		t.res.Stats.Failed++
	}
}

// moved records that a source path changed during the pass, with the first
// reason seen; retries and the final re-scan may report it again.
func (t *tally) moved(path, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.movedSeen[path] {
		return
	}
	if t.movedSeen == nil {
		t.movedSeen = map[string]bool{}
	}
	t.movedSeen[path] = true
	t.notQuiet = append(t.notQuiet, path+" ("+why+")")
}

func (t *tally) note(path, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.noteLocked(path, msg)
}

func (t *tally) noteLocked(path, msg string) {
	t.res.Problems = append(t.res.Problems, record.Problem{Path: path, Err: msg, Skipped: true})
	t.res.Stats.Skipped++
	fmt.Fprintf(t.log, "msync: skipping %s: %s\n", manifest.Escape(path), manifest.EscapeLines(msg))
}

func (t *tally) tempRemoved() {
	t.mu.Lock()
	t.res.Stats.Temps++
	t.mu.Unlock()
}

// workTimes returns the workers' time on files and moving bytes.
func (t *tally) workTimes() (work, copying time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.work, t.copying
}

// transferred adds a worker's transfer to the statistics.
func (t *tally) transferred(x xferStats) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.res.Stats
	s.Written += x.written
	s.Literal += x.literal
	s.Matched += x.matched
	s.WireBytes += x.wire
	t.copying += x.copying
	t.work += x.work
	if x.appended {
		s.Appended++
	}
	if x.delta {
		s.Deltas++
	}
}

// count adds the planner's decision a to the statistics.
func (t *tally) count(a *action) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := &t.res.Stats
	if a.count {
		t.countSource(a.s)
	}
	switch a.op {
	case actExtra:
		st.Kept++
	case actDelete:
		st.Deleted++
	case actHold:
		t.res.Problems = append(t.res.Problems, record.Problem{Path: a.s.Path, Err: a.why, Skipped: true})
		if st.Held < maxHeldLogged {
			fmt.Fprintf(t.log, "msync: leaving %s: %s\n", manifest.Escape(a.s.Path), a.why)
		}
		st.Held++
		if t.final {
			if t.held == nil {
				t.held = map[string]bool{}
			}
			t.held[a.s.Path] = true
		}
	case actSkip:
		t.noteLocked(a.s.Path, a.why)
	case actCreate:
		st.Created++
	case actMeta:
		st.MetaOnly++
	case actLink:
		st.HardLinks++
	case actCopy:
		if a.d == nil {
			st.Created++
		} else {
			st.Updated++
		}
		st.DataBytes += a.s.Size
		if t.counters != nil {
			t.counters.FilesQueued.Add(1)
			t.counters.BytesQueued.Add(a.s.Size)
		}
	}
}

func (t *tally) countSource(s *manifest.Entry) {
	CountSource(&t.res.Stats, s)
	if t.rules != nil && t.rules.Queued(s.Path) {
		t.queueSrc++
	}
}

// CountSource counts one source entry in st: entries, and files (with
// their bytes), directories, symlinks or specials. Every pass counts its
// source this way, the push to stock rsync included.
func CountSource(st *record.Stats, s *manifest.Entry) {
	st.Entries++
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
