package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/record"
)

// A history an earlier msync wrote (no "v" in its lines) reads, and a
// pass appended after it carries the current version; both read back.
func TestHistoryReadsOldLinesAndAppendsVersioned(t *testing.T) {
	dir := t.TempDir()
	old, err := os.ReadFile("../../record/testdata/passes-3f48111.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passes.jsonl"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	end := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	q := &record.Queue{Src: 1, Dst: 2}
	if err := d.AppendPass(&record.Pass{Kind: "catchup", End: end, OK: true, Stats: record.Stats{DataBytes: 42, Held: 3}, Queue: q}); err != nil {
		t.Fatal(err)
	}
	ps, err := Passes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || ps[1].Class != "exim-spool" || ps[1].Stats.Kept != 12 || ps[1].Stats.Held != 23 || ps[1].Queue.Dst != 4 {
		t.Fatalf("old lines read as %+v", ps)
	}
	if p := ps[2]; p.Stats.DataBytes != 42 || p.Stats.Held != 3 || *p.Queue != *q || !p.End.Equal(end) {
		t.Errorf("appended pass read back as %+v", p)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "passes.jsonl"))
	if !strings.HasSuffix(string(b), "\n") || !strings.Contains(string(b[len(old):]), `{"v":1,"kind":"catchup"`) {
		t.Errorf("appended line: %s", b[len(old):])
	}
}

// A line of a version this msync cannot read is an error naming the file,
// the line and the version, not a silent zero record.
func TestHistoryRefusesAnUnknownVersion(t *testing.T) {
	dir := t.TempDir()
	lines := `{"kind":"initial","ok":true}` + "\n" + `{"v":2,"kind":"catchup","stats":"a new shape"}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "passes.jsonl"), []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Passes(dir)
	var ve *record.VersionError
	if !errors.As(err, &ve) || ve.V != 2 {
		t.Fatalf("err = %v, want a record.VersionError", err)
	}
	for _, s := range []string{filepath.Join(dir, "passes.jsonl"), "line 2", "version 2"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
}

// verify.json keeps its names (record.VerifyJSON).
func TestVerifyRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	v := &record.Verify{Time: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Duration: time.Second, Identical: true, Method: "content", Same: 9, Bytes: 100}
	if err := WriteVerify(dir, v); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "verify.json"))
	if !strings.Contains(string(b), `"bytes_hashed": 100`) || !strings.Contains(string(b), `"identical": true`) {
		t.Errorf("verify.json: %s", b)
	}
	got, err := LastVerify(dir)
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Errorf("read back %+v, %v", got, err)
	}
}

// An append that was torn (a pass killed while writing its record, or a
// full disk) leaves a line without its newline. The next pass's record
// must not be glued to it: the history stays readable, the torn record
// gone and every complete one kept.
func TestHistoryAppendAfterATornLine(t *testing.T) {
	dir := t.TempDir()
	whole := `{"v":1,"kind":"initial","ok":true}` + "\n"
	for _, torn := range []string{`{"v":1,"kind":"catchup","st`, `{`, strings.Repeat("x", 70000)} {
		if err := os.WriteFile(filepath.Join(dir, "passes.jsonl"), []byte(whole+torn), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		err = d.AppendPass(&record.Pass{Kind: "catchup", OK: true, Stats: record.Stats{Files: 5}})
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		ps, err := Passes(dir)
		if err != nil {
			t.Fatalf("torn %.20q: the history no longer reads: %v", torn, err)
		}
		if len(ps) != 2 || ps[0].Kind != "initial" || ps[1].Kind != "catchup" || ps[1].Stats.Files != 5 {
			t.Errorf("torn %.20q: read back %+v", torn, ps)
		}
	}
}
