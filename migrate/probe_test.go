package migrate

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/plan"
	"github.com/msync/msync/record"
	"github.com/msync/msync/sync/class"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
)

func file(path string, size, mtime int64) *manifest.Entry {
	return &manifest.Entry{Path: path, Type: manifest.TypeFile, Mode: 0o644, Size: size, Mtime: mtime}
}

func dir(path string, mtime int64) *manifest.Entry {
	return &manifest.Entry{Path: path, Type: manifest.TypeDir, Mode: 0o755, Mtime: mtime}
}

// CountPending counts each kind of change once, appended tails of growing
// files apart, and the whole size of what a pass copies.
func TestCountPending(t *testing.T) {
	last := []*manifest.Entry{dir("", 1), file("a", 10, 1), dir("gone", 1), file("gone/x", 5, 1), file("l.mbox", 100, 1),
		file("meta", 3, 1), file("same", 7, 1), file("z", 4, 1)}
	meta := file("meta", 3, 1)
	meta.Mode = 0o600
	scan := []*manifest.Entry{dir("", 2), file("a", 12, 2), file("b", 20, 2), file("l.mbox", 150, 2), meta, file("same", 7, 1), file("z", 4, 2)}
	rules := class.MailmanArchives.Rules(class.Config{})
	pend, err := engine.CountPending(&manifest.SliceIterator{Entries: scan}, &manifest.SliceIterator{Entries: last}, rules)
	if err != nil {
		t.Fatal(err)
	}
	got := fromPending(pend)
	want := ProbeResult{Entries: 7, SrcBytes: 12 + 20 + 150 + 3 + 7 + 4,
		New: Pending{1, 20}, Changed: Pending{2, 16}, Appended: Pending{1, 50}, Deleted: Pending{1, 0}, Meta: Pending{2, 0},
		CopyBytes: 20 + 12 + 4 + 150}
	if *got != want {
		t.Errorf("got  %+v\nwant %+v", *got, want)
	}
	if got.Paths() != 7 {
		t.Errorf("paths %d", got.Paths())
	}
	// A mailman-qfiles dataset's final pass leaves old bad/ entries behind.
	old := file("bad/1.pck", 10, 1)
	young := file("bad/2.pck", 10, time.Now().UnixNano())
	qrules := class.MailmanQfiles.Rules(class.Config{Final: true, MaxAge: time.Hour})
	q, err := engine.CountPending(&manifest.SliceIterator{Entries: []*manifest.Entry{dir("", 1), dir("bad", 1), old, young}},
		&manifest.SliceIterator{Entries: []*manifest.Entry{dir("", 1), dir("bad", 1)}}, qrules)
	if err != nil || q.Held != 1 || q.New.Paths != 1 || q.CopyBytes != 10 {
		t.Errorf("qfiles: %v %+v", err, q)
	}
	// Without the class, the mbox is a changed file.
	pend, _ = engine.CountPending(&manifest.SliceIterator{Entries: scan}, &manifest.SliceIterator{Entries: last}, nil)
	got = fromPending(pend)
	if got.Appended.Paths != 0 || got.Changed.Paths != 3 {
		t.Errorf("no rules: %+v", *got)
	}
}

// Probe reads the committed manifest while a pass holds the state lock,
// writes nothing there or at DST, and refuses a push whose state is on
// DST's host.
func TestProbeLocal(t *testing.T) {
	d := t.TempDir()
	src, dst, sd := filepath.Join(d, "src"), filepath.Join(d, "dst"), filepath.Join(d, "state")
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write("a", "a")
	ctx := context.Background()
	o := ProbeOptions{State: sd, Src: src, Dst: dst}
	if _, err := Probe(ctx, o); !errors.Is(err, ErrNoState) {
		t.Fatalf("before a pass: %v", err)
	}
	if _, err := engine.Run(ctx, engine.Options{Kind: engine.Initial, Src: src, Dst: dst, StateDir: sd}); err != nil {
		t.Fatal(err)
	}
	write("b", "bb")
	write("a", "changed")
	list := func(p string) []string {
		es, _ := os.ReadDir(p)
		var out []string
		for _, e := range es {
			fi, _ := e.Info()
			out = append(out, e.Name()+fi.ModTime().String())
		}
		return out
	}
	beforeState, beforeDst := list(sd), list(dst)
	st, err := state.Open(sd) // a pass running
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := Probe(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.New.Paths != 1 || r.Changed.Paths != 1 || r.CopyBytes != 9 || r.Entries != 3 || r.Way != "local" {
		t.Errorf("probe: %+v", *r)
	}
	if !slices.Equal(list(sd), beforeState) || !slices.Equal(list(dst), beforeDst) {
		t.Errorf("the probe wrote: state %v -> %v, dst %v -> %v", beforeState, list(sd), beforeDst, list(dst))
	}
	o.Dst = "somehost:" + dst
	if _, err := Probe(ctx, o); !IsUsage(err) {
		t.Errorf("push to ssh: %v, want a refusal", err)
	}
}

// The window: the probe's measured work plus the growth until --at, the
// verification learned from the last one, and the plan's fixed steps.
func TestEstimateWindowProbe(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	var ps []record.Pass
	ps = append(ps, record.Pass{Kind: "initial", OK: true, Start: t0, End: t0.Add(10 * time.Second), Duration: 10 * time.Second,
		Stats: record.Stats{Entries: 1000, Created: 1000, DataBytes: 1e8, SrcBytes: 1e8}})
	for i := 1; i <= 4; i++ {
		end := t0.Add(time.Duration(i) * time.Hour)
		files := int64(100 * i)
		ps = append(ps, record.Pass{Kind: "catchup", OK: true, GapSeconds: 600 * float64(i), Start: end.Add(-time.Second), End: end,
			Duration: time.Second + time.Duration(files)*10*time.Millisecond, Stats: record.Stats{Entries: 1000, Updated: files, SrcBytes: 1e8}})
	}
	last := ps[len(ps)-1].End
	probe := &ProbeResult{Entries: 1000, SrcBytes: 1e8, New: Pending{Paths: 500}, At: last.Add(time.Hour)}
	v := &record.Verify{Duration: 20 * time.Second, Bytes: 2e8, Same: 1000}
	h := History{Name: "d", Passes: ps, Probe: probe, Verify: v}

	// At the probe's time: the measured 500 paths.
	w, err := EstimateWindow([]History{h}, 1, 0, probe.At)
	if err != nil {
		t.Fatal(err)
	}
	d := w.Datasets[0]
	if d.Files != 500 || d.Probe != probe || d.GrowthFiles != 0 {
		t.Fatalf("at the probe: %+v", d)
	}
	// Half an hour later: plus the fitted rate (1 path per 6 s of gap).
	w2, err := EstimateWindow([]History{h}, 1, 0, probe.At.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if g := w2.Datasets[0].GrowthFiles; math.Abs(g-300) > 1 {
		t.Errorf("growth over 30m: %.1f paths, want 300", g)
	}
	if w2.Seconds <= w.Seconds {
		t.Errorf("growth did not add time: %v <= %v", w2.Seconds, w.Seconds)
	}
	// --gap: from the probe to the stop.
	w3, err := EstimateWindow([]History{h}, 1, 30*time.Minute, time.Time{})
	if err != nil || math.Abs(w3.Datasets[0].GrowthFiles-300) > 1 {
		t.Errorf("--gap 30m: %v, %+v", err, w3)
	}
	// An --at before the probe is refused.
	if _, err := EstimateWindow([]History{h}, 1, 0, probe.At.Add(-10*time.Minute)); err == nil {
		t.Error("--at before the probe accepted")
	}

	// The verification: same tree, same time as the last one.
	if len(w.Terms) != 2 || w.Terms[1].Name != "verify" || math.Abs(w.Terms[1].Seconds-20) > 0.01 {
		t.Fatalf("terms %+v", w.Terms)
	}
	// Twice the bytes and entries: twice the time.
	h2 := h
	h2.Probe = &ProbeResult{Entries: 2000, SrcBytes: 2e8, At: probe.At}
	w4, _ := EstimateWindow([]History{h2}, 1, 0, probe.At)
	if s := w4.Terms[1].Seconds; math.Abs(s-40) > 0.01 {
		t.Errorf("verify of a tree twice the size: %.2f s, want 40", s)
	}

	// The fixed steps, in order; the downtime is the sum of every term.
	w.AddSteps([]plan.Step{{Name: "stop_services", Duration: 5 * time.Minute}, {Name: "dns", Duration: 10 * time.Minute}})
	names := []string{}
	var sum, lo, hi float64
	for _, tm := range w.Terms {
		names = append(names, tm.Name)
		sum, lo, hi = sum+tm.Seconds, lo+tm.Low, hi+tm.High
	}
	if !slices.Equal(names, []string{"final pass", "verify", "stop_services", "dns"}) {
		t.Errorf("terms %v", names)
	}
	if w.Downtime.Seconds != sum || w.Downtime.Low != lo || w.Downtime.High != hi || sum < 900 {
		t.Errorf("downtime %+v, terms sum %.2f (%.2f - %.2f)", w.Downtime, sum, lo, hi)
	}
	if w.Downtime.Low > w.Downtime.Seconds || w.Downtime.High < w.Downtime.Seconds {
		t.Errorf("downtime range %+v", w.Downtime)
	}

	// Without a verify record, the window says so.
	h.Verify = nil
	w5, _ := EstimateWindow([]History{h}, 1, 0, probe.At)
	if w5.HasVerify() || w5.Downtime.Note == "" || w5.Datasets[0].VerifyNote == "" {
		t.Errorf("no verify record: %+v", w5)
	}
}

// A mailman-archives mbox that grew is an appended tail, and the pass
// then appends it.
func TestProbeAppendedMbox(t *testing.T) {
	d := t.TempDir()
	src, dst, sd := filepath.Join(d, "src"), filepath.Join(d, "dst"), filepath.Join(d, "state")
	mbox := filepath.Join(src, "private", "list.mbox")
	if err := os.MkdirAll(filepath.Dir(mbox), 0o755); err != nil {
		t.Fatal(err)
	}
	msg := "From a@b Mon Jan  1 00:00:00 2026\nSubject: x\n\nbody\n\n"
	if err := os.WriteFile(mbox, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o := Options{Kind: engine.Initial, State: sd, Class: class.MailmanArchives, Fsync: "none", Delta: "auto"}
	if _, _, err := Pass(ctx, src, dst, o); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(mbox, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(msg + msg)
	f.Close()
	r, err := Probe(ctx, ProbeOptions{State: sd, Src: src, Dst: dst, Class: class.MailmanArchives})
	if err != nil {
		t.Fatal(err)
	}
	if r.Appended != (Pending{1, int64(2 * len(msg))}) || r.Changed.Paths != 0 || r.CopyBytes != int64(3*len(msg)) {
		t.Errorf("probe: %+v", *r)
	}
	o.Kind = engine.Catchup
	res, _, err := Pass(ctx, src, dst, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Appended != 1 || res.Stats.DataBytes != r.CopyBytes || res.Stats.Changed() != r.Paths() {
		t.Errorf("pass %+v, probe %+v", res.Stats, *r)
	}
}
