// Package record is msync's record schema: what a pass did (Stats,
// Problem, Result, Queue), the record of a pass kept in a state
// directory's history (Pass, PhaseTimes) and the record of the last
// verification (Verify).
//
// The types here are domain types: they carry no encoding. Each place a
// record leaves the process has its own explicit codec: passes.jsonl and
// the JSON msync prints (jsonl.go, json.go in this package) and msync's
// protocol (ToWire/FromWire in transport/remote). A leaf: it imports the
// standard library only.
package record

import "time"

// Stats summarises a pass.
type Stats struct {
	Entries   int64 // source entries
	Files     int64 // source regular files
	Dirs      int64 // source directories
	Symlinks  int64 // source symlinks
	Specials  int64 // fifos, devices, sockets
	SrcBytes  int64 // sum of source file sizes
	Created   int64 // new files, dirs, links at the destination
	Updated   int64 // existing files whose content was replaced
	MetaOnly  int64 // objects whose metadata alone changed
	HardLinks int64 // hard links made
	Deleted   int64 // destination paths removed
	Kept      int64 // destination paths not in the source, kept
	DataBytes int64 // size of files transferred
	Literal   int64 // bytes sent as literals
	Matched   int64 // bytes reused from the destination's old copies
	Written   int64 // bytes written to the destination
	WireBytes int64 // what would cross a wire: literals, signatures, op framing
	Appended  int64 // files sent by the append fast path
	Deltas    int64 // files sent as deltas
	Failed    int64
	Vanished  int64
	Skipped   int64
	Held      int64 // source files the class's rules left as they are at DST this pass
	Temps     int64 // leftovers of killed passes removed
}

// Changed counts the paths the pass changed: created, updated, metadata
// only, deleted and hard links made.
func (s *Stats) Changed() int64 {
	return s.Created + s.Updated + s.MetaOnly + s.Deleted + s.HardLinks
}

// Problem is a path the pass could not handle.
type Problem struct {
	Path     string
	Err      string
	Vanished bool
	Skipped  bool // a note, not a failure
}

// Result is what a pass did.
type Result struct {
	Stats    Stats
	Problems []Problem
	// NotQuiet lists source paths that changed during a --final pass.
	NotQuiet []string
	// Committed is true when the manifests of this pass were committed.
	Committed bool
	// TrustedDest is true when the destination was not scanned but taken
	// from its committed manifest (--trust-dest).
	TrustedDest bool
	// Queue counts the queued messages (engine.Rules.Queued) on each side
	// after the pass; nil when the rules count none.
	Queue *Queue
}

// Queue is the number of queued messages on each side (exim-spool).
type Queue struct {
	Src int64
	Dst int64
}

// Pass is the record of one pass, kept in the history of a state
// directory (sync/state: passes.jsonl).
type Pass struct {
	Kind       string // initial, catchup, final
	Class      string // the dataset's class (sync/class); "" is generic
	Start, End time.Time
	GapSeconds float64 // since the previous pass ended
	Src, Dst   string
	DryRun     bool
	OK         bool
	ExitCode   int
	Stats      Stats
	Phases     PhaseTimes
	Quiet      *bool  // final passes: was the source quiet
	Queue      *Queue // queued messages on each side after the pass
	Duration   time.Duration
}

// Changed counts the paths a recorded pass changed (Stats.Changed).
func (p *Pass) Changed() int64 { return p.Stats.Changed() }

// PhaseTimes is the wall time of each phase of a pass. Scanning, comparing
// and transferring overlap (the comparison is a merge of the scans as they
// stream, and files are copied as soon as they are found): Scan runs until
// both scans were consumed, Diff is the time spent deciding what to do
// with each entry, Transfer runs until the last file was written.
type PhaseTimes struct {
	Scan     time.Duration
	Diff     time.Duration
	Transfer time.Duration
	Delete   time.Duration
	Commit   time.Duration
	Recheck  time.Duration
	// Work is the time the workers spent on the files they wrote, summed
	// over the workers (so it can exceed the pass's duration), and Copy
	// the part of it moving bytes: reading, delta and writing, against
	// opening, creating, syncing and renaming. Copy/Work tells the cost
	// of a pass's bytes from that of its paths (the estimate). Zero in
	// passes recorded before they were measured.
	Work time.Duration
	Copy time.Duration
	// Unlink is the part of Delete spent deleting (the rest makes hard
	// links and sets directories' metadata).
	Unlink time.Duration
	// Merge is Scan without the merge's waits for the workers and the
	// manifest writer: the scans and their merge, which every pass pays
	// whatever it copies (the estimate's fixed cost). Zero in passes
	// recorded before it was measured.
	Merge time.Duration
}

// Verify is the outcome of the last verification of a SRC and DST pair.
type Verify struct {
	Time      time.Time
	Duration  time.Duration
	Identical bool
	Method    string
	Same      int64
	Differ    int64
	Missing   int64
	Extra     int64
	Errors    int64
	Held      int64
	Bytes     int64 // bytes hashed
	// First lists the first differences as verify printed them.
	First []string
	// NotCompared lists what verify did not compare, and why: Identical
	// is about the rest only.
	NotCompared []string
}
