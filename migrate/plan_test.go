package migrate

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/plan"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
)

func TestWorst(t *testing.T) {
	for _, c := range []struct{ a, b, want int }{
		{ExitOK, ExitOK, ExitOK},
		{ExitOK, ExitDiffer, ExitDiffer},
		{ExitDiffer, ExitVanished, ExitVanished},
		{ExitPartial, ExitVanished, ExitPartial},
		{ExitVanished, ExitPartial, ExitPartial},
		{ExitPartial, ExitFatal, ExitFatal},
		{ExitFatal, ExitDiffer, ExitFatal},
	} {
		if got := Worst(c.a, c.b); got != c.want {
			t.Errorf("Worst(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestPassCode(t *testing.T) {
	for _, c := range []struct {
		failed, vanished int64
		notQuiet         []string
		final            bool
		want             int
	}{
		{0, 0, nil, false, ExitOK},
		{0, 0, []string{"x"}, false, ExitOK}, // not a final pass: moving is normal
		{0, 0, []string{"x"}, true, ExitVanished},
		{0, 2, nil, false, ExitVanished},
		{1, 2, []string{"x"}, true, ExitPartial},
	} {
		res := &record.Result{NotQuiet: c.notQuiet}
		res.Stats.Failed, res.Stats.Vanished = c.failed, c.vanished
		if got := PassCode(res, c.final); got != c.want {
			t.Errorf("%+v: %d, want %d", c, got, c.want)
		}
	}
}

// TestScheduleOrder checks that a dataset runs only after the datasets
// inside it, each exactly once.
func TestScheduleOrder(t *testing.T) {
	ds := []*plan.Dataset{
		{Name: "all", Source: "/srv"},
		{Name: "mailman", Source: "/srv/mailman"},
		{Name: "archives", Source: "/srv/mailman/archives"},
		{Name: "home", Source: "/home"},
		{Name: "spool", Source: "/srv/spool"},
	}
	for range 20 {
		var mu sync.Mutex
		done := make([]bool, len(ds))
		runs := make([]int, len(ds))
		Schedule(context.Background(), ds, 3, func(i int) {
			mu.Lock()
			for _, j := range plan.After(ds)[i] {
				if !done[j] {
					t.Errorf("%s started before %s ended", ds[i].Name, ds[j].Name)
				}
			}
			runs[i]++
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			done[i] = true
			mu.Unlock()
		})
		for i, n := range runs {
			if n != 1 {
				t.Fatalf("%s ran %d times", ds[i].Name, n)
			}
		}
	}
}

// TestScheduleConcurrency checks that independent datasets run workers at
// a time: never more, and that many at once.
func TestScheduleConcurrency(t *testing.T) {
	var ds []*plan.Dataset
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		ds = append(ds, &plan.Dataset{Name: n, Source: "/" + n})
	}
	for _, workers := range []int{1, 3} {
		var running, peak atomic.Int32
		Schedule(context.Background(), ds, workers, func(i int) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			// Wait (briefly) for the others so that the peak is reached.
			deadline := time.Now().Add(200 * time.Millisecond)
			for running.Load() < int32(workers) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
		})
		if got := peak.Load(); got != int32(workers) {
			t.Errorf("workers=%d: %d ran at once", workers, got)
		}
	}
}

// TestRunPlan runs a plan of local passes: outcomes in plan order, each
// dataset's state in the plan's state directory, the hooks called, and
// the worst exit code for a dataset whose source is missing.
func TestRunPlan(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"src/a", "src/b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "f"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &plan.Plan{Path: filepath.Join(dir, "p.toml"), Parallel: 2}
	ds := []*plan.Dataset{
		{Name: "a", Source: "src/a", Dest: "dst/a"},
		{Name: "gone", Source: "src/gone", Dest: "dst/gone"},
		{Name: "b", Source: "src/b", Dest: "dst/b", Exclude: []string{"f"}},
	}
	var mu sync.Mutex
	var started, ended []string
	hooks := PlanHooks{
		Start: func(i int, d *plan.Dataset) (_ io.Writer, _ func(engine.Item)) {
			mu.Lock()
			defer mu.Unlock()
			started = append(started, d.Name)
			return nil, nil
		},
		Done: func(i int, out *DatasetPass) {
			mu.Lock()
			defer mu.Unlock()
			ended = append(ended, out.Dataset.Name)
		},
	}
	o := Options{Kind: engine.Initial, Fsync: "none", Delta: "auto"}
	outs, code := RunPlan(context.Background(), p, ds, o, hooks)
	if code != ExitFatal {
		t.Errorf("exit code %d, want %d (a missing source)", code, ExitFatal)
	}
	if len(started) != 3 || len(ended) != 3 {
		t.Errorf("hooks: started %v, ended %v", started, ended)
	}
	for i, out := range outs {
		if out.Dataset != ds[i] {
			t.Fatalf("outcome %d is %s's, want %s's", i, out.Dataset.Name, ds[i].Name)
		}
		if want := filepath.Join(dir, ds[i].Dest); out.Dst != want {
			t.Errorf("%s: dst %s, want %s", ds[i].Name, out.Dst, want)
		}
	}
	if outs[1].Err == nil || outs[1].ExitCode != ExitFatal {
		t.Errorf("gone: %v, code %d", outs[1].Err, outs[1].ExitCode)
	}
	for _, i := range []int{0, 2} {
		out := outs[i]
		if out.Err != nil || out.ExitCode != ExitOK {
			t.Fatalf("%s: %v, code %d", ds[i].Name, out.Err, out.ExitCode)
		}
		if want := filepath.Join(dir, "p.state", ds[i].Name); out.State != want {
			t.Errorf("%s: state %s, want %s", ds[i].Name, out.State, want)
		}
		if _, err := os.Stat(out.State); err != nil {
			t.Errorf("%s: %v", ds[i].Name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "dst/a/f")); err != nil || string(b) != "src/a" {
		t.Errorf("dst/a/f: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dst/b/f")); !os.IsNotExist(err) {
		t.Errorf("dst/b/f: the dataset's exclude was not applied (%v)", err)
	}
	if !strings.Contains(outs[1].Err.Error(), "gone") {
		t.Errorf("gone: error %q does not name the source", outs[1].Err)
	}
}

// TestRunPlanVerify verifies a copied plan: identical datasets record
// their outcome in their state directory, a differing one earns
// ExitDiffer, one that cannot be read ExitFatal and no report.
func TestRunPlanVerify(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "xdg"))
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("src/same/f", "x")
	write("src/differ/f", "x")
	write("src/differ/g", "y")
	p := &plan.Plan{Path: filepath.Join(dir, "p.toml"), Parallel: 2}
	ds := []*plan.Dataset{
		{Name: "same", Source: "src/same", Dest: "dst/same"},
		{Name: "differ", Source: "src/differ", Dest: "dst/differ"},
		{Name: "gone", Source: "src/gone", Dest: "dst/gone"},
	}
	if _, code := RunPlan(context.Background(), p, ds[:2], Options{Kind: engine.Initial, Fsync: "none", Delta: "auto"}, PlanHooks{}); code != ExitOK {
		t.Fatalf("copy: exit code %d", code)
	}
	write("dst/differ/g", "changed")
	outs, code := RunPlanVerify(context.Background(), p, ds, VerifyOptions{Workers: 1})
	if code != ExitFatal {
		t.Errorf("exit code %d, want %d", code, ExitFatal)
	}
	for i, want := range []int{ExitOK, ExitDiffer, ExitFatal} {
		if outs[i].ExitCode != want {
			t.Errorf("%s: exit code %d, want %d (%v)", ds[i].Name, outs[i].ExitCode, want, outs[i].Err)
		}
	}
	if outs[2].Report != nil || outs[2].Err == nil {
		t.Errorf("gone: report %v, error %v", outs[2].Report, outs[2].Err)
	}
	for i, identical := range []bool{true, false} {
		if outs[i].RecordErr != nil {
			t.Fatalf("%s: %v", ds[i].Name, outs[i].RecordErr)
		}
		v, err := state.LastVerify(p.StatePath(ds[i]))
		if err != nil || v == nil {
			t.Fatalf("%s: no verify record (%v)", ds[i].Name, err)
		}
		if v.Identical != identical {
			t.Errorf("%s: recorded identical=%v, want %v", ds[i].Name, v.Identical, identical)
		}
		if !identical && (v.Differ != 1 || len(v.First) != 1) {
			t.Errorf("%s: recorded %d differ, first %q", ds[i].Name, v.Differ, v.First)
		}
	}
}

func TestEstimateWindowWithoutHistory(t *testing.T) {
	w, err := EstimateWindow([]History{{Name: "a"}, {Name: "b", After: []int{0}}}, 0, time.Minute, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Parallel != 1 || len(w.Datasets) != 2 || w.Seconds != 0 {
		t.Errorf("window %+v", w)
	}
	for _, d := range w.Datasets {
		if d.Error == "" || d.Prediction != nil {
			t.Errorf("%s: no history yet a prediction (%+v)", d.Name, d)
		}
	}
	if _, err := EstimateWindow([]History{{Name: "a"}}, 2, 0, time.Now()); err == nil || !strings.Contains(err.Error(), "a's last pass ended") {
		t.Errorf("--at with no pass: %v", err)
	}
}
