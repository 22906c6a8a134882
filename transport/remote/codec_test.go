package remote

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/record"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/transport/wire"
)

// The frames in testdata were encoded by msync 3f48111, when the domain
// types' JSON tags were the wire payload: a peer of the same protocol
// version must get the same bytes, and ours must read theirs.

func readFrame(t *testing.T, name string) (golden []byte, f wire.Frame) {
	t.Helper()
	golden, err := os.ReadFile("testdata/" + name + "-3f48111.frame")
	if err != nil {
		t.Fatal(err)
	}
	f, err = wire.NewReader(bytes.NewReader(golden)).Next()
	if err != nil {
		t.Fatal(err)
	}
	return golden, f
}

func frame(typ wire.Type, payload []byte) []byte {
	return append(wire.AppendHeader(nil, typ, 0, len(payload)), payload...)
}

func TestPushOptionsWireGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    PushOptions
	}{
		{"open_full", PushOptions{Kind: engine.Catchup, SrcName: "host:/srv/mail", StateDir: "/var/lib/st", Final: true, DryRun: true,
			TrustDest: true, DeleteExtraneous: true, Exclude: []string{"*.tmp", "/cache/"}, Xattrs: true, Sparse: true, Owners: true,
			OwnersAuto: true, Fsync: engine.FsyncFile, Delta: engine.DeltaAlways, Workers: 8, Itemize: true, Progress: true,
			Class: "mailman-qfiles", MaxAge: 7 * 24 * time.Hour}},
		{"open_minimal", PushOptions{Kind: engine.Initial, SrcName: "t:src", OwnersAuto: true, Progress: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden, f := readFrame(t, tc.name)
			w := OptionsToWire(&tc.o)
			b, err := wire.EncodeJSON(wire.OpenRequest{Op: "receive", Path: "m/dst", Token: "s3cret", Pass: &w})
			if err != nil {
				t.Fatal(err)
			}
			if got := frame(wire.TOpen, b); !bytes.Equal(got, golden) {
				t.Errorf("encoded\n%q\nwant\n%q", got, golden)
			}
			var req wire.OpenRequest
			if err := wire.DecodeJSON(f.Payload, &req); err != nil {
				t.Fatal(err)
			}
			got, err := OptionsFromWire(req.Pass)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.o) {
				t.Errorf("decoded %+v\nwant %+v", got, tc.o)
			}
		})
	}
}

func TestPassResultWireGolden(t *testing.T) {
	full := &record.Result{
		Stats: record.Stats{Entries: 1, Files: 2, Dirs: 3, Symlinks: 4, Specials: 5, SrcBytes: 6, Created: 7, Updated: 8, MetaOnly: 9,
			HardLinks: 10, Deleted: 11, Kept: 12, DataBytes: 13, Literal: 14, Matched: 15, Written: 16, WireBytes: 17, Appended: 18,
			Deltas: 19, Failed: 20, Vanished: 21, Skipped: 22, Held: 23, Temps: 24},
		Problems: []record.Problem{{Path: "a/b", Err: "a/b: permission denied"}, {Path: "gone", Err: "gone: vanished", Vanished: true},
			{Path: "sock", Err: "skipped socket", Skipped: true}},
		NotQuiet:    []string{"moved", "also\nmoved"},
		Committed:   true,
		TrustedDest: true,
		Queue:       &record.Queue{Src: 31, Dst: 32},
	}
	minimal := &record.Result{Stats: record.Stats{Entries: 5, Files: 4}}
	for _, tc := range []struct {
		name    string
		res     *record.Result
		errText string
	}{
		{"result_full", full, ""},
		{"result_minimal", minimal, ""},
		{"result_error", minimal, "state: locked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden, f := readFrame(t, tc.name)
			if got := frame(wire.TResult, encodePassResult(tc.res, tc.errText)); !bytes.Equal(got, golden) {
				t.Errorf("encoded\n%q\nwant\n%q", got, golden)
			}
			var pr wire.PassResult
			if err := wire.DecodeJSON(f.Payload, &pr); err != nil {
				t.Fatal(err)
			}
			got, err := decodePassResult(&pr)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.res) || pr.Err != tc.errText {
				t.Errorf("decoded %+v, %q\nwant %+v, %q", got, pr.Err, tc.res, tc.errText)
			}
		})
	}
}

// A result too large for a frame still reaches the client, its problems
// cut to the first 1000.
func TestPassResultTooLargeKeepsFirstProblems(t *testing.T) {
	res := &record.Result{Committed: true}
	long := strings.Repeat("x", 200) // 20000 problems exceed a frame, 1000 fit
	for range 20000 {
		res.Problems = append(res.Problems, record.Problem{Path: long, Err: long})
	}
	out := encodePassResult(res, "")
	var pr wire.PassResult
	if err := wire.DecodeJSON(out, &pr); err != nil {
		t.Fatal(err)
	}
	got, err := decodePassResult(&pr)
	if err != nil || got == nil || len(got.Problems) != 1000 || !got.Committed {
		t.Fatalf("got %d problems, %v", len(got.Problems), err)
	}
	if len(res.Problems) != 20000 {
		t.Error("the caller's result was cut")
	}
}

func TestOptionsFromWireRefuses(t *testing.T) {
	for _, w := range []wire.PassOptions{
		{Kind: "final"},
		{Kind: "initial", Fsync: "sometimes"},
		{Kind: "initial", Delta: "maybe"},
		{Kind: "initial", Workers: 257},
		{Kind: "initial", Workers: -1},
		{Kind: "initial", Class: "no-such-class"},
		{Kind: "initial", Class: "mailman-qfiles", MaxAgeSeconds: -1},
		{Kind: "initial", Class: "mailman-qfiles", MaxAgeSeconds: 1 << 62},
	} {
		if _, err := OptionsFromWire(&w); err == nil {
			t.Errorf("%+v accepted", w)
		} else if w.Fsync == "" && w.Delta == "" && !errors.Is(err, wire.ErrProtocol) {
			t.Errorf("%+v: %v is not a protocol error", w, err)
		}
	}
}

// A --final push on a busy tree can list more moved paths than a frame
// holds: the result still reaches the client (committed, with the first
// moved paths, so that it exits as not quiet), not an empty frame the
// client refuses as a protocol error.
func TestPassResultTooManyNotQuietStillArrives(t *testing.T) {
	res := &record.Result{Committed: true, Stats: record.Stats{Files: 7}}
	for i := range 40000 {
		res.NotQuiet = append(res.NotQuiet, strings.Repeat("q", 50)+"/"+strings.Repeat("x", i%7)+" (changed while read)")
	}
	out := encodePassResult(res, "")
	var pr wire.PassResult
	if err := wire.DecodeJSON(out, &pr); err != nil {
		t.Fatalf("the pass result does not reach the client: %v", err)
	}
	got, err := decodePassResult(&pr)
	if err != nil || got == nil || !got.Committed || got.Stats.Files != 7 {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if n := len(got.NotQuiet); n == 0 || n > 1000 || got.NotQuiet[0] != res.NotQuiet[0] {
		t.Errorf("%d moved paths arrived, want the first ones, at most 1000", n)
	}
	if len(res.NotQuiet) != 40000 {
		t.Error("the caller's result was cut")
	}
}

// Problems whose texts are long (a path may take 32 KiB) can exceed a
// frame even when cut to 1000: the list is cut further, never dropped
// with the result.
func TestPassResultLongProblemsStillArrive(t *testing.T) {
	res := &record.Result{Stats: record.Stats{Failed: 2000}}
	long := strings.Repeat("p/", 2000)
	for range 2000 {
		res.Problems = append(res.Problems, record.Problem{Path: long, Err: "open " + long + ": permission denied"})
	}
	var pr wire.PassResult
	if err := wire.DecodeJSON(encodePassResult(res, "2000 files failed"), &pr); err != nil {
		t.Fatalf("the pass result does not reach the client: %v", err)
	}
	got, err := decodePassResult(&pr)
	if err != nil || got == nil || got.Stats.Failed != 2000 || len(got.Problems) == 0 || pr.Err != "2000 files failed" {
		t.Fatalf("decoded %+v, %q, %v", got, pr.Err, err)
	}
}

// Why a pass failed reaches the client even when its text alone would
// exceed a frame: cut, not lost.
func TestPassResultLongErrorStillArrives(t *testing.T) {
	var pr wire.PassResult
	if err := wire.DecodeJSON(encodePassResult(nil, "pass failed: "+strings.Repeat("e", 2<<20)), &pr); err != nil {
		t.Fatalf("the error does not reach the client: %v", err)
	}
	if !strings.HasPrefix(pr.Err, "pass failed: eee") {
		t.Errorf("error %.40q...", pr.Err)
	}
}
