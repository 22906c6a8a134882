package bench

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/msync/msync/estimate"
	"github.com/msync/msync/record"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/verify"
)

// scenarioStep is one catch-up of a scenario: the gap it stands for (in
// units) and the Mutate rounds made before it.
type scenarioStep struct{ units, rounds int }

// Scenario is a shape of change before the final pass.
type Scenario struct {
	Name  string
	About string
	Learn []scenarioStep // the catch-ups the estimate learns from
	Final scenarioStep   // what changes before the final pass
}

// Scenarios are the shapes EstimateScenarios knows.
var Scenarios = []Scenario{
	{Name: "bursty", About: "three quiet catch-ups an hour apart, then a burst (six rounds) just before the final",
		Learn: []scenarioStep{{6, 0}, {6, 0}, {6, 0}}, Final: scenarioStep{1, 6}},
	{Name: "steady", About: "two rounds per unit of gap before every pass",
		Learn: []scenarioStep{{1, 2}, {2, 4}, {1, 2}, {2, 4}}, Final: scenarioStep{1, 2}},
	{Name: "shrinking", About: "a backlog draining: 8, 4, 2 rounds per 3-unit gap, then 1 before the final",
		Learn: []scenarioStep{{3, 8}, {3, 4}, {3, 2}}, Final: scenarioStep{3, 1}},
}

// ScenarioConfig configures EstimateScenarios.
type ScenarioConfig struct {
	Dir   string  // work directory (emptied)
	Scale float64 // tree size
	Seed  uint64
	Unit  time.Duration // the stretch of time two Mutate rounds stand for
	Names []string      // scenarios to run (all when empty)
	Log   io.Writer
}

// Guess is one prediction with its range.
type Guess struct {
	Seconds float64 `json:"seconds"`
	Low     float64 `json:"low_seconds"`
	High    float64 `json:"high_seconds"`
}

// Err is the guess's error against actual, in percent.
func (g Guess) Err(actual float64) float64 { return 100 * (g.Seconds - actual) / actual }

// Holds reports whether the guess is within ±20% of actual and its range
// contains it.
func (g Guess) Holds(actual float64) bool {
	return math.Abs(g.Err(actual)) <= 20 && g.Low <= actual && actual <= g.High
}

// ScenarioRow is one scenario's predictions and what happened.
type ScenarioRow struct {
	Scenario string `json:"scenario"`
	Entries  int64  `json:"entries"`
	// The final pass, and the final pass then msync verify.
	Final       float64 `json:"final_seconds"`
	FinalVerify float64 `json:"final_verify_seconds"`
	History     Guess   `json:"history"` // estimate without --probe
	Probe       Guess   `json:"probe"`   // estimate --probe
	HistoryWin  Guess   `json:"history_window"`
	ProbeWin    Guess   `json:"probe_window"`
	// Changed paths: predicted from history, counted by the probe, and
	// what the final pass changed.
	HistoryPaths float64 `json:"history_paths"`
	ProbePaths   int64   `json:"probe_paths"`
	Paths        int64   `json:"paths"`
	ProbeTook    float64 `json:"probe_seconds"`
}

// ScenarioResult is the outcome of EstimateScenarios.
type ScenarioResult struct {
	Rows []ScenarioRow `json:"rows"`
}

// EstimateScenarios replays each scenario on a generated tree: an initial
// copy, the learning catch-ups (their gaps simulated, as in EstimateCheck),
// a verification as a rehearsal, the scenario's change, then the two
// predictions (history alone, and a probe of the source now, as msync
// estimate and msync estimate --probe make them), the real final pass and
// the real verification after it.
func EstimateScenarios(ctx context.Context, c ScenarioConfig) (*ScenarioResult, error) {
	if c.Unit == 0 {
		c.Unit = 10 * time.Minute
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	out := &ScenarioResult{}
	for _, sc := range Scenarios {
		if len(c.Names) > 0 && !contains(c.Names, sc.Name) {
			continue
		}
		row, err := runScenario(ctx, c, sc)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
		out.Rows = append(out.Rows, *row)
	}
	if len(out.Rows) == 0 {
		return nil, fmt.Errorf("no such scenario in %v (have bursty, steady, shrinking)", c.Names)
	}
	return out, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// scenarioRun is one scenario's tree, state and simulated gaps.
type scenarioRun struct {
	c             ScenarioConfig
	src, dst, sd  string
	round         int
	gaps          []time.Duration
	xattrs, owner bool
}

func (r *scenarioRun) mutate(rounds int) error {
	for range rounds {
		r.round++
		if _, err := Mutate(r.src, r.c.Seed, r.round); err != nil {
			return err
		}
	}
	settle()
	return nil
}

func (r *scenarioRun) pass(ctx context.Context, kind engine.Kind, final bool) (*record.Result, error) {
	return engine.Run(ctx, engine.Options{Kind: kind, Src: r.src, Dst: r.dst, StateDir: r.sd, Final: final, Xattrs: r.xattrs, Owners: r.owner})
}

// verify runs msync's verification of the pair and returns its record. It
// starts with both trees in the page cache, as on a host whose memory holds
// them: msync writes large files past the cache, so the rehearsal would
// otherwise read them from disk and the check after the final pass would
// not, and this VM's cold reads vary by twice from one run to the next
// (the same rehearsal took 1.4 to 2.7 s after dropping the caches).
func (r *scenarioRun) verify(ctx context.Context) (*record.Verify, error) {
	if err := warm(r.src, r.dst); err != nil {
		return nil, err
	}
	start := time.Now()
	rep, err := verify.Run(ctx, verify.Options{Src: r.src, Dst: r.dst, Xattrs: r.xattrs, Owners: r.owner})
	if err != nil {
		return nil, err
	}
	if !rep.Identical {
		return nil, fmt.Errorf("verify: the copy differs (%d differ, %d missing)", rep.Totals.Differ, rep.Totals.Missing)
	}
	t := rep.Totals
	return &record.Verify{Time: start, Duration: time.Since(start), Identical: true, Same: t.Same, Differ: t.Differ, Missing: t.Missing,
		Errors: t.Errors, Held: t.Held, Bytes: t.Bytes}, nil
}

// warm reads every regular file under the roots once.
func warm(roots ...string) error {
	buf := make([]byte, 1<<20)
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.CopyBuffer(io.Discard, f, buf)
			return err
		})
		if err != nil {
			return fmt.Errorf("warming the page cache: %w", err)
		}
	}
	settle()
	return nil
}

// model fits the history with each catch-up given the gap it stands for.
func (r *scenarioRun) model() (*estimate.Model, *record.Pass, error) {
	ps, err := state.Passes(r.sd)
	if err != nil {
		return nil, nil, err
	}
	pts := estimate.Points(ps)
	k := 0
	for i := range pts {
		if pts[i].Kind == "initial" {
			continue
		}
		if k < len(r.gaps) {
			pts[i].Gap = r.gaps[k]
		}
		k++
	}
	m, err := estimate.Fit(pts)
	return m, &ps[len(ps)-1], err
}

// probe counts what is pending now, as msync estimate --probe does: a
// scan of the source against the last committed source manifest, no lock.
func (r *scenarioRun) probe(ctx context.Context) (*engine.Pending, time.Duration, error) {
	start := time.Now()
	l := tree.NewLocal(r.src)
	defer l.Close()
	p, _, err := engine.ProbeSource(ctx, l, r.sd, nil, nil)
	return p, time.Since(start), err
}

func runScenario(ctx context.Context, c ScenarioConfig, sc Scenario) (*ScenarioRow, error) {
	dir := filepath.Join(c.Dir, sc.Name)
	// A tree left by an earlier run is removed, and timing waits as
	// bench run's does after a large deletion (Config.copyDir says why).
	rm := &Config{Dir: c.Dir, Log: c.Log}
	if err := rm.removeTree(dir); err != nil {
		return nil, err
	}
	rm.waitAfterDeletion()
	r := &scenarioRun{c: c, src: filepath.Join(dir, "src"), dst: filepath.Join(dir, "dst"), sd: filepath.Join(dir, "state"),
		xattrs: true, owner: os.Geteuid() == 0}
	fmt.Fprintf(c.Log, "estimate-check %s: %s; generating scale %g\n", sc.Name, sc.About, c.Scale)
	if _, err := Gen(r.src, c.Seed, c.Scale); err != nil {
		return nil, err
	}
	settle()
	if _, err := r.pass(ctx, engine.Initial, false); err != nil {
		return nil, err
	}
	for _, st := range sc.Learn {
		if err := r.mutate(st.rounds); err != nil {
			return nil, err
		}
		res, err := r.pass(ctx, engine.Catchup, false)
		if err != nil {
			return nil, err
		}
		r.gaps = append(r.gaps, time.Duration(st.units)*c.Unit)
		fmt.Fprintf(c.Log, "estimate-check %s: learning: catch-up after %s (%d rounds): %d changed\n", sc.Name, time.Duration(st.units)*c.Unit, st.rounds, res.Stats.Changed())
	}
	rehearsal, err := r.verify(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c.Log, "estimate-check %s: rehearsal verify took %s (%d bytes hashed)\n", sc.Name, rehearsal.Duration.Round(time.Millisecond), rehearsal.Bytes)
	if err := r.mutate(sc.Final.rounds); err != nil {
		return nil, err
	}
	m, last, err := r.model()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c.Log, "estimate-check %s: fitted fixed %s at %.0f entries, %s a path, %s a deletion, %.2f ns a byte (measured split: %v)\n", sc.Name,
		m.Fixed.Round(time.Millisecond), m.Entries, m.PerFile.Round(time.Microsecond/10), m.PerDelete.Round(time.Microsecond/10), m.PerByte*1e9, m.Direct)
	gap := time.Duration(sc.Final.units) * c.Unit
	hist := m.Predict(gap, 0, true)
	pend, took, err := r.probe(ctx)
	if err != nil {
		return nil, err
	}
	prb := m.PredictMeasured(estimate.Measured{Files: float64(pend.Paths()), Deleted: float64(pend.Deleted.Paths), Bytes: float64(pend.CopyBytes), Entries: float64(pend.Entries), Scan: took}, 0, true)
	hv, hvLo, hvHi := estimate.Verify(rehearsal, float64(last.Stats.Entries), float64(last.Stats.SrcBytes))
	pv, pvLo, pvHi := estimate.Verify(rehearsal, float64(pend.Entries), float64(pend.SrcBytes))

	settle()
	t := time.Now()
	res, err := r.pass(ctx, engine.Catchup, true)
	if err != nil {
		return nil, err
	}
	final := time.Since(t)
	after, err := r.verify(ctx)
	if err != nil {
		return nil, err
	}
	ver := after.Duration
	fmt.Fprintf(c.Log, "estimate-check %s: verify after the final took %s (predicted %s)\n", sc.Name, ver.Round(time.Millisecond), pv.Round(time.Millisecond))
	row := &ScenarioRow{Scenario: sc.Name, Entries: res.Stats.Entries, Final: final.Seconds(), FinalVerify: (final + ver).Seconds(),
		History:      Guess{hist.Total.Seconds(), hist.Low.Seconds(), hist.High.Seconds()},
		Probe:        Guess{prb.Total.Seconds(), prb.Low.Seconds(), prb.High.Seconds()},
		HistoryWin:   Guess{(hist.Total + hv).Seconds(), (hist.Low + hvLo).Seconds(), (hist.High + hvHi).Seconds()},
		ProbeWin:     Guess{(prb.Total + pv).Seconds(), (prb.Low + pvLo).Seconds(), (prb.High + pvHi).Seconds()},
		HistoryPaths: hist.Files, ProbePaths: pend.Paths(), Paths: res.Stats.Changed(), ProbeTook: took.Seconds()}
	fmt.Fprintf(c.Log, "estimate-check %s: final took %s (history %s, probe %s); with verify %s (history %s, probe %s)\n", sc.Name,
		final.Round(time.Millisecond), hist.Total.Round(time.Millisecond), prb.Total.Round(time.Millisecond),
		(final + ver).Round(time.Millisecond), (hist.Total + hv).Round(time.Millisecond), (prb.Total + pv).Round(time.Millisecond))
	return row, nil
}

// Markdown writes the scenarios' predictions against the real passes.
func (r *ScenarioResult) Markdown(w io.Writer) {
	cell := func(g Guess, actual float64) string {
		mark := "no"
		if g.Holds(actual) {
			mark = "yes"
		}
		return fmt.Sprintf("%.3f s (%.3f-%.3f) %+.0f%% %s", g.Seconds, g.Low, g.High, g.Err(actual), mark)
	}
	fmt.Fprintln(w, "| scenario | entries | what | actual | history alone (range) error, ±20% and in range | --probe (range) error, ±20% and in range | changed paths: history / probe / actual | probe's own scan |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	held := 0
	for _, row := range r.Rows {
		fmt.Fprintf(w, "| %s | %d | final pass | %.3f s | %s | %s | %.0f / %d / %d | %.3f s |\n", row.Scenario, row.Entries, row.Final,
			cell(row.History, row.Final), cell(row.Probe, row.Final), row.HistoryPaths, row.ProbePaths, row.Paths, row.ProbeTook)
		fmt.Fprintf(w, "| %s | | final + verify | %.3f s | %s | %s | | |\n", row.Scenario, row.FinalVerify,
			cell(row.HistoryWin, row.FinalVerify), cell(row.ProbeWin, row.FinalVerify))
		if row.Probe.Holds(row.Final) && row.ProbeWin.Holds(row.FinalVerify) {
			held++
		}
	}
	fmt.Fprintf(w, "\n--probe within ±20%% with the actual value in its range, final pass and final + verify: %d of %d scenarios\n", held, len(r.Rows))
}
