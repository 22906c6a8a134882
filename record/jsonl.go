package record

import (
	"encoding/json"
	"fmt"
	"time"
)

// PassLineVersion is the version of the pass records this msync writes
// in passes.jsonl (the "v" of each line). Lines without one were written
// before records carried a version; they have the same names and read
// the same.
const PassLineVersion = 1

// passLine is one line of passes.jsonl.
type passLine struct {
	V          int            `json:"v"`
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
	Stats      StatsJSON      `json:"stats"`
	Phases     PhaseTimesJSON `json:"phases"`
	Quiet      *bool          `json:"quiet,omitempty"`
	Queue      *QueueJSON     `json:"queue,omitempty"`
	Duration   time.Duration  `json:"duration_ns"`
}

// VersionError is a record in a version this msync cannot read (written
// by a newer one).
type VersionError struct {
	V, Max int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("unknown pass record version %d (this msync reads versions up to %d: was it written by a newer one?)", e.V, e.Max)
}

// EncodePassLine encodes p as one line of passes.jsonl, without the
// newline.
func EncodePassLine(p *Pass) ([]byte, error) {
	return json.Marshal(passLine{V: PassLineVersion, Kind: p.Kind, Class: p.Class, Start: p.Start, End: p.End,
		GapSeconds: p.GapSeconds, Src: p.Src, Dst: p.Dst, DryRun: p.DryRun, OK: p.OK, ExitCode: p.ExitCode,
		Stats: StatsToJSON(p.Stats), Phases: PhaseTimesJSON(p.Phases), Quiet: p.Quiet, Queue: queueToJSON(p.Queue),
		Duration: p.Duration})
}

// DecodePassLine decodes one line of passes.jsonl: the current version,
// or a line without a version (earlier msync versions). Any other version
// is a *VersionError.
func DecodePassLine(b []byte) (Pass, error) {
	var v struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Pass{}, err
	}
	if v.V != nil && *v.V != PassLineVersion {
		return Pass{}, &VersionError{V: *v.V, Max: PassLineVersion}
	}
	var l passLine
	if err := json.Unmarshal(b, &l); err != nil {
		return Pass{}, err
	}
	return Pass{Kind: l.Kind, Class: l.Class, Start: l.Start, End: l.End, GapSeconds: l.GapSeconds,
		Src: l.Src, Dst: l.Dst, DryRun: l.DryRun, OK: l.OK, ExitCode: l.ExitCode,
		Stats: StatsFromJSON(l.Stats), Phases: PhaseTimes(l.Phases), Quiet: l.Quiet,
		Queue: queueFromJSON(l.Queue), Duration: l.Duration}, nil
}
