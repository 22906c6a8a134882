package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The goldens in testdata were written by msync 3f48111, before this
// package existed: passes.jsonl by state.AppendPass, the status form by
// `msync status --json`'s encoding of the history read back, the result
// form by `msync catchup --json`'s encoding of engine.Result.

func fullResult() *Result {
	return &Result{
		Stats: Stats{Entries: 1, Files: 2, Dirs: 3, Symlinks: 4, Specials: 5, SrcBytes: 6, Created: 7, Updated: 8, MetaOnly: 9,
			HardLinks: 10, Deleted: 11, Kept: 12, DataBytes: 13, Literal: 14, Matched: 15, Written: 16, WireBytes: 17, Appended: 18,
			Deltas: 19, Failed: 20, Vanished: 21, Skipped: 22, Held: 23, Temps: 24},
		Problems:    []Problem{{Path: "a/b", Err: "a/b: permission denied"}, {Path: "gone", Err: "gone: vanished", Vanished: true}, {Path: "sock", Err: "skipped socket", Skipped: true}},
		NotQuiet:    []string{"moved", "also\nmoved"},
		Committed:   true,
		TrustedDest: true,
		Queue:       &Queue{Src: 31, Dst: 32},
	}
}

func minimalResult() *Result { return &Result{Stats: Stats{Entries: 5, Files: 4}} }

// goldenPasses are the records passes-3f48111.jsonl holds.
func goldenPasses() []Pass {
	q := true
	start := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	return []Pass{
		{Kind: "initial", Start: start.Add(-time.Hour), End: start.Add(-time.Hour + time.Second), Src: "/a", Dst: "/b", DryRun: true, ExitCode: 23,
			Stats: Stats{Entries: 3, Failed: 1}, Phases: PhaseTimes{Scan: 7, Transfer: 8}, Duration: time.Second},
		{Kind: "catchup", Class: "exim-spool", Start: start, End: start.Add(90 * time.Second), GapSeconds: 3600.5, Src: "host:/srv", Dst: "/dst",
			OK: true, Stats: fullResult().Stats, Phases: PhaseTimes{Scan: 1, Diff: 2, Transfer: 3, Delete: 4, Commit: 5, Recheck: 6},
			Quiet: &q, Queue: &Queue{Src: 3, Dst: 4}, Duration: 90 * time.Second},
	}
}

func readLines(t *testing.T, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// A history written before records had a version reads as the same records.
func TestDecodeOldPassLine(t *testing.T) {
	lines := readLines(t, "testdata/passes-3f48111.jsonl")
	want := goldenPasses()
	if len(lines) != len(want) {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		p, err := DecodePassLine(l)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if !reflect.DeepEqual(p, want[i]) {
			t.Errorf("line %d:\n got %+v\nwant %+v", i+1, p, want[i])
		}
	}
}

// A line is the old line with "v":1 first: every name an earlier msync
// wrote (and reads) is kept.
func TestEncodePassLineKeepsNames(t *testing.T) {
	lines := readLines(t, "testdata/passes-3f48111.jsonl")
	for i, p := range goldenPasses() {
		b, err := EncodePassLine(&p)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"v":1,` + strings.TrimPrefix(strings.TrimSuffix(string(lines[i]), "\n"), "{")
		if string(b) != want {
			t.Errorf("pass %d:\n got %s\nwant %s", i, b, want)
		}
	}
}

func TestPassLineRoundTrip(t *testing.T) {
	for _, p := range goldenPasses() {
		b, err := EncodePassLine(&p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodePassLine(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("got %+v\nwant %+v", got, p)
		}
	}
}

// The cost split a pass measures (Work, Copy, Merge, Unlink) is carried by its
// line under names of its own, and lines without it read as zero.
func TestPassLineCarriesCostSplit(t *testing.T) {
	p := goldenPasses()[1]
	p.Phases.Work, p.Phases.Copy, p.Phases.Merge, p.Phases.Unlink = 7*time.Second, 2*time.Second, time.Second, 3*time.Second
	b, err := EncodePassLine(&p)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"work_ns":7000000000`, `"copy_ns":2000000000`, `"merge_ns":1000000000`, `"unlink_ns":3000000000`} {
		if !bytes.Contains(b, []byte(name)) {
			t.Errorf("line %s lacks %s", b, name)
		}
	}
	got, err := DecodePassLine(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Phases != p.Phases {
		t.Errorf("phases %+v, want %+v", got.Phases, p.Phases)
	}
}

func TestDecodePassLineRefusesUnknownVersion(t *testing.T) {
	for _, l := range []string{`{"v":2,"kind":"catchup","stats":{}}`, `{"v":0,"kind":"catchup"}`, `{"v":99,"stats":"a new shape"}`} {
		_, err := DecodePassLine([]byte(l))
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Max != PassLineVersion {
			t.Errorf("%s: err = %v, want a VersionError", l, err)
		}
	}
	if _, err := DecodePassLine([]byte(`{"v":"1"}`)); err == nil {
		t.Error("a version that is not a number was accepted")
	}
}

func indent(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// `msync catchup --json` prints the result as it always did.
func TestResultJSONGolden(t *testing.T) {
	got := indent(t, map[string]any{"result": ResultToJSON(fullResult()), "minimal": ResultToJSON(minimalResult())})
	if want := golden(t, "testdata/result-3f48111.json"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if ResultToJSON(nil) != nil || ResultFromJSON(nil) != nil {
		t.Error("nil did not stay nil")
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	for _, r := range []*Result{fullResult(), minimalResult()} {
		b, err := json.Marshal(ResultToJSON(r))
		if err != nil {
			t.Fatal(err)
		}
		var j ResultJSON
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
		if got := ResultFromJSON(&j); !reflect.DeepEqual(got, r) {
			t.Errorf("got %+v\nwant %+v", got, r)
		}
	}
}

// `msync status --json` prints the history as it always did, stats names
// sorted.
func TestPassJSONGolden(t *testing.T) {
	got := indent(t, map[string]any{"passes": PassesToJSON(goldenPasses())})
	if want := golden(t, "testdata/status-3f48111.json"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := indent(t, PassesToJSON(nil)); got != "null\n" {
		t.Errorf("no history: %s", got)
	}
}

func TestVerifyJSONRoundTrip(t *testing.T) {
	v := &Verify{Time: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Duration: time.Minute, Identical: false, Method: "content",
		Same: 1, Differ: 2, Missing: 3, Extra: 4, Errors: 5, Held: 6, Bytes: 7, First: []string{"* a"}, NotCompared: []string{"acls"}}
	b, err := json.Marshal(VerifyToJSON(v))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"time":"2026-03-01T10:00:00Z","duration_ns":60000000000,"identical":false,"method":"content","same":1,"differ":2,"missing":3,"extra":4,"errors":5,"held":6,"bytes_hashed":7,"first":["* a"],"not_compared":["acls"]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var j VerifyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if got := VerifyFromJSON(&j); !reflect.DeepEqual(got, v) {
		t.Errorf("got %+v\nwant %+v", got, v)
	}
}

func TestChanged(t *testing.T) {
	p := Pass{Stats: Stats{Created: 1, Updated: 2, MetaOnly: 4, Deleted: 8, HardLinks: 16, Kept: 32, Failed: 64}}
	if n := p.Changed(); n != 31 {
		t.Errorf("Changed = %d, want 31", n)
	}
}
