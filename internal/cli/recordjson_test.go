package cli

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/msync/msync/record"
)

// `msync run --json` and `msync status --json` print the records in their
// JSON forms (record), with the names and order they always had.
func TestRecordsPrintTheirJSONForms(t *testing.T) {
	o := datasetOutcome{Name: "mail", Class: "home", Src: "/s", Dst: "/d", State: "/st", ExitCode: 0, Elapsed: 1.5,
		Result: &record.Result{Stats: record.Stats{Entries: 2, Held: 1}, Committed: true, Queue: &record.Queue{Src: 1, Dst: 2}}, Items: []string{">f+++++++++ a"}}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"mail","class":"home","src":"/s","dst":"/d","state":"/st","exit_code":0,"elapsed_seconds":1.5,` +
		`"result":{"stats":{"entries":2,"files":0,"dirs":0,"symlinks":0,"specials":0,"src_bytes":0,"created":0,"updated":0,"meta_only":0,` +
		`"hardlinks":0,"deleted":0,"extraneous":0,"data_bytes":0,"literal_bytes":0,"matched_bytes":0,"written_bytes":0,"wire_bytes":0,` +
		`"appended":0,"deltas":0,"failed":0,"vanished":0,"skipped":0,"held":1,"temps_removed":0},"committed":true,"queue":{"src":1,"dst":2}},` +
		`"items":["\u003ef+++++++++ a"]}` // as json.Encoder always printed it
	if string(b) != want {
		t.Errorf("outcome:\n got %s\nwant %s", b, want)
	}
	if b, _ := json.Marshal(datasetOutcome{Name: "x", Error: "boom"}); string(b) != `{"name":"x","class":"","src":"","dst":"","exit_code":0,"error":"boom","elapsed_seconds":0}` {
		t.Errorf("outcome without result: %s", b)
	}

	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	h := history{Name: "mail", State: "/st", Source: "/s", Passes: []record.Pass{{Kind: "initial", Start: at, End: at, OK: true,
		Stats: record.Stats{Files: 3, Entries: 4}}}, Verify: &record.Verify{Time: at, Identical: true, Method: "content"}}
	b, err = json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	const wantH = `{"name":"mail","state":"/st","passes":[{"kind":"initial","start":"2026-03-01T10:00:00Z","end":"2026-03-01T10:00:00Z",` +
		`"src":"","dst":"","ok":true,"exit_code":0,"stats":{"appended":0,"created":0,"data_bytes":0,"deleted":0,"deltas":0,"dirs":0,` +
		`"entries":4,"extraneous":0,"failed":0,"files":3,"hardlinks":0,"literal_bytes":0,"matched_bytes":0,"meta_only":0,"skipped":0,` +
		`"specials":0,"src_bytes":0,"symlinks":0,"temps_removed":0,"updated":0,"vanished":0,"wire_bytes":0,"written_bytes":0},` +
		`"phases":{"scan_ns":0,"transfer_ns":0,"delete_ns":0,"commit_ns":0},"duration_ns":0}],` +
		`"last_verify":{"time":"2026-03-01T10:00:00Z","duration_ns":0,"identical":true,"method":"content","same":0,"differ":0,` +
		`"missing":0,"extra":0,"errors":0,"bytes_hashed":0},"source":"/s"}`
	if string(b) != wantH {
		t.Errorf("history:\n got %s\nwant %s", b, wantH)
	}
	if b, _ := json.Marshal(history{Name: "x"}); string(b) != `{"name":"x","state":"","passes":null}` {
		t.Errorf("empty history: %s", b)
	}
}
