package record

import (
	"encoding/json"
	"time"
)

// The JSON forms of the records msync prints (`--json`) and keeps
// (passes.jsonl, verify.json). Their names are a promise to scripts and to
// the history files earlier versions wrote: never rename one.

// StatsJSON is the JSON form of Stats.
type StatsJSON struct {
	Entries   int64 `json:"entries"`
	Files     int64 `json:"files"`
	Dirs      int64 `json:"dirs"`
	Symlinks  int64 `json:"symlinks"`
	Specials  int64 `json:"specials"`
	SrcBytes  int64 `json:"src_bytes"`
	Created   int64 `json:"created"`
	Updated   int64 `json:"updated"`
	MetaOnly  int64 `json:"meta_only"`
	HardLinks int64 `json:"hardlinks"`
	Deleted   int64 `json:"deleted"`
	Kept      int64 `json:"extraneous"`
	DataBytes int64 `json:"data_bytes"`
	Literal   int64 `json:"literal_bytes"`
	Matched   int64 `json:"matched_bytes"`
	Written   int64 `json:"written_bytes"`
	WireBytes int64 `json:"wire_bytes"`
	Appended  int64 `json:"appended"`
	Deltas    int64 `json:"deltas"`
	Failed    int64 `json:"failed"`
	Vanished  int64 `json:"vanished"`
	Skipped   int64 `json:"skipped"`
	Held      int64 `json:"held,omitempty"`
	Temps     int64 `json:"temps_removed"`
}

// StatsToJSON converts s to its JSON form.
func StatsToJSON(s Stats) StatsJSON { return StatsJSON(s) }

// StatsFromJSON converts the JSON form back.
func StatsFromJSON(s StatsJSON) Stats { return Stats(s) }

// ProblemJSON is the JSON form of Problem.
type ProblemJSON struct {
	Path     string `json:"path"`
	Err      string `json:"error"`
	Vanished bool   `json:"vanished,omitempty"`
	Skipped  bool   `json:"skipped,omitempty"`
}

// QueueJSON is the JSON form of Queue.
type QueueJSON struct {
	Src int64 `json:"src"`
	Dst int64 `json:"dst"`
}

func queueToJSON(q *Queue) *QueueJSON {
	if q == nil {
		return nil
	}
	return &QueueJSON{Src: q.Src, Dst: q.Dst}
}

func queueFromJSON(q *QueueJSON) *Queue {
	if q == nil {
		return nil
	}
	return &Queue{Src: q.Src, Dst: q.Dst}
}

// ResultJSON is the JSON form of Result: the "result" that
// `msync catchup --json` and `msync run --json` print.
type ResultJSON struct {
	Stats       StatsJSON     `json:"stats"`
	Problems    []ProblemJSON `json:"problems,omitempty"`
	NotQuiet    []string      `json:"not_quiet,omitempty"`
	Committed   bool          `json:"committed"`
	TrustedDest bool          `json:"trusted_dest,omitempty"`
	Queue       *QueueJSON    `json:"queue,omitempty"`
}

// ResultToJSON converts r to its JSON form; nil stays nil.
func ResultToJSON(r *Result) *ResultJSON {
	if r == nil {
		return nil
	}
	j := &ResultJSON{Stats: StatsToJSON(r.Stats), NotQuiet: r.NotQuiet, Committed: r.Committed,
		TrustedDest: r.TrustedDest, Queue: queueToJSON(r.Queue)}
	if r.Problems != nil {
		j.Problems = make([]ProblemJSON, len(r.Problems))
		for i, p := range r.Problems {
			j.Problems[i] = ProblemJSON(p)
		}
	}
	return j
}

// ResultFromJSON converts the JSON form back; nil stays nil.
func ResultFromJSON(j *ResultJSON) *Result {
	if j == nil {
		return nil
	}
	r := &Result{Stats: StatsFromJSON(j.Stats), NotQuiet: j.NotQuiet, Committed: j.Committed,
		TrustedDest: j.TrustedDest, Queue: queueFromJSON(j.Queue)}
	if j.Problems != nil {
		r.Problems = make([]Problem, len(j.Problems))
		for i, p := range j.Problems {
			r.Problems[i] = Problem(p)
		}
	}
	return r
}

// PhaseTimesJSON is the JSON form of PhaseTimes (nanoseconds).
type PhaseTimesJSON struct {
	Scan     time.Duration `json:"scan_ns"`
	Diff     time.Duration `json:"diff_ns,omitempty"`
	Transfer time.Duration `json:"transfer_ns"`
	Delete   time.Duration `json:"delete_ns"`
	Commit   time.Duration `json:"commit_ns"`
	Recheck  time.Duration `json:"recheck_ns,omitempty"`
	Work     time.Duration `json:"work_ns,omitempty"`
	Copy     time.Duration `json:"copy_ns,omitempty"`
	Unlink   time.Duration `json:"unlink_ns,omitempty"`
	Merge    time.Duration `json:"merge_ns,omitempty"`
}

// PassJSON is the JSON form of a pass record that `msync status --json`
// prints. Its stats print with their names in sorted order, as they
// always have (the history used to be read back into a map).
type PassJSON struct {
	Kind       string         `json:"kind"`
	Class      string         `json:"class,omitempty"`
	Start      time.Time      `json:"start"`
	End        time.Time      `json:"end"`
	GapSeconds float64        `json:"gap_seconds,omitempty"`
	Src        string         `json:"src"`
	Dst        string         `json:"dst"`
	DryRun     bool           `json:"dry_run,omitempty"`
	OK         bool           `json:"ok"`
	ExitCode   int            `json:"exit_code"`
	Stats      SortedStats    `json:"stats"`
	Phases     PhaseTimesJSON `json:"phases"`
	Quiet      *bool          `json:"quiet,omitempty"`
	Queue      *QueueJSON     `json:"queue,omitempty"`
	Duration   time.Duration  `json:"duration_ns"`
}

// SortedStats is StatsJSON marshalled with its names in sorted order.
type SortedStats StatsJSON

// MarshalJSON encodes s as a JSON object whose names are sorted.
func (s SortedStats) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(StatsJSON(s))
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return json.Marshal(m) // a map's names are sorted
}

// PassToJSON converts p to the form `msync status --json` prints.
func PassToJSON(p *Pass) PassJSON {
	return PassJSON{Kind: p.Kind, Class: p.Class, Start: p.Start, End: p.End, GapSeconds: p.GapSeconds,
		Src: p.Src, Dst: p.Dst, DryRun: p.DryRun, OK: p.OK, ExitCode: p.ExitCode,
		Stats: SortedStats(StatsToJSON(p.Stats)), Phases: PhaseTimesJSON(p.Phases), Quiet: p.Quiet,
		Queue: queueToJSON(p.Queue), Duration: p.Duration}
}

// PassesToJSON converts a history with PassToJSON; nil stays nil.
func PassesToJSON(ps []Pass) []PassJSON {
	if ps == nil {
		return nil
	}
	out := make([]PassJSON, len(ps))
	for i := range ps {
		out[i] = PassToJSON(&ps[i])
	}
	return out
}

// VerifyJSON is the JSON form of Verify (verify.json, and "last_verify"
// in `msync status --json`).
type VerifyJSON struct {
	Time        time.Time     `json:"time"`
	Duration    time.Duration `json:"duration_ns"`
	Identical   bool          `json:"identical"`
	Method      string        `json:"method"`
	Same        int64         `json:"same"`
	Differ      int64         `json:"differ"`
	Missing     int64         `json:"missing"`
	Extra       int64         `json:"extra"`
	Errors      int64         `json:"errors"`
	Held        int64         `json:"held,omitempty"`
	Bytes       int64         `json:"bytes_hashed"`
	First       []string      `json:"first,omitempty"`
	NotCompared []string      `json:"not_compared,omitempty"`
}

// VerifyToJSON converts v to its JSON form; nil stays nil.
func VerifyToJSON(v *Verify) *VerifyJSON {
	if v == nil {
		return nil
	}
	j := VerifyJSON(*v)
	return &j
}

// VerifyFromJSON converts the JSON form back; nil stays nil.
func VerifyFromJSON(j *VerifyJSON) *Verify {
	if j == nil {
		return nil
	}
	v := Verify(*j)
	return &v
}
