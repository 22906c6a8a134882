package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/msync/msync/migrate"
	"github.com/msync/msync/report"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/plan"
	"github.com/msync/msync/record"
	"github.com/msync/msync/sync/state"
	"github.com/spf13/cobra"
)

// history is the pass history of one dataset (a plan's, or one SRC DST pair).
type history struct {
	Name     string
	Class    string
	State    string
	Passes   []record.Pass
	Verify   *record.Verify
	Source   string
	Dest     string
	after    []int // datasets this one starts after (plan order)
	parallel int
	exclude  []string             // a plan dataset's filters
	maxAge   time.Duration        // a plan dataset's max_age
	probe    *migrate.ProbeResult // estimate --probe
}

// MarshalJSON is what `msync status --json` prints of a history, its
// records in their JSON forms (record).
func (h history) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name   string             `json:"name"`
		Class  string             `json:"class,omitempty"`
		State  string             `json:"state"`
		Passes []record.PassJSON  `json:"passes"`
		Verify *record.VerifyJSON `json:"last_verify,omitempty"`
		Source string             `json:"source,omitempty"`
		Dest   string             `json:"dest,omitempty"`
	}{h.Name, h.Class, h.State, record.PassesToJSON(h.Passes), record.VerifyToJSON(h.Verify), h.Source, h.Dest})
}

type historyFlags struct {
	state string
	plan  planFlags
	json  bool
}

func addHistoryFlags(c *cobra.Command, hf *historyFlags) {
	c.Flags().StringVar(&hf.state, "state", "", "state directory to read (default: the SRC/DST pair's)")
	c.Flags().BoolVar(&hf.json, "json", false, "print JSON")
	addPlanFlags(c, &hf.plan)
}

// histories loads the pass histories the flags and arguments name.
func (hf *historyFlags) histories(args []string) ([]history, *plan.Plan, error) {
	if hf.plan.path != "" {
		p, ds, err := hf.plan.load()
		if err != nil {
			return nil, nil, err
		}
		var out []history
		after := plan.After(ds)
		for i, d := range ds {
			h := history{Name: d.Name, Class: d.Class, State: p.StatePath(d), Source: d.Source, Dest: d.Dest, parallel: p.Workers()}
			h.after, h.exclude, h.maxAge = after[i], d.Exclude, d.Age()
			if err := h.load(); err != nil {
				return nil, nil, err
			}
			out = append(out, h)
		}
		return out, p, nil
	}
	sd := hf.state
	name := sd
	if sd == "" {
		if len(args) != 2 {
			return nil, nil, &exitError{code: exitCodeUsage, err: errors.New("give SRC DST, --state DIR or --plan FILE")}
		}
		var err error
		if sd, err = migrate.StateDir("", args[0], args[1]); err != nil {
			return nil, nil, fatal(err)
		}
		name = args[0] + " -> " + args[1]
	}
	if _, err := os.Stat(sd); err != nil {
		return nil, nil, fatal(fmt.Errorf("no state directory %s: has a pass run for this pair? (%w)", sd, err))
	}
	h := history{Name: name, State: sd, parallel: 1}
	if err := h.load(); err != nil {
		return nil, nil, err
	}
	return []history{h}, nil, nil
}

func (h *history) load() error {
	ps, err := state.Passes(h.State)
	if err != nil {
		return fatal(fmt.Errorf("%s: %w", h.Name, err))
	}
	h.Passes = ps
	if h.Verify, err = state.LastVerify(h.State); err != nil {
		return fatal(fmt.Errorf("%s: %w", h.Name, err))
	}
	if h.Class == "" {
		for _, p := range ps {
			if p.Class != "" {
				h.Class = p.Class
			}
		}
	}
	return nil
}

func historyArgs(hf *historyFlags) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if hf.plan.path != "" || hf.state != "" {
			if len(args) != 0 {
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("%s: no SRC DST with --plan or --state", cmd.Name())}
			}
			return nil
		}
		return planArgs(&hf.plan, 2)(cmd, args)
	}
}

func newStatusCommand(env Env) *cobra.Command {
	hf := &historyFlags{}
	c := &cobra.Command{
		Use:   "status [flags] SRC DST | --plan FILE | --state DIR",
		Short: "Show the passes so far: how the diff shrinks pass after pass",
		Long: `Print the history of passes of a SRC/DST pair (or of every dataset of a plan): when
each ran, the gap since the previous one, what it found changed and copied, how long each
phase took, and the last verification.`,
		Args: historyArgs(hf),
		RunE: func(cmd *cobra.Command, args []string) error {
			hs, _, err := hf.histories(args)
			if err != nil {
				return err
			}
			if hf.json {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"datasets": hs})
			}
			for i, h := range hs {
				if i > 0 {
					fmt.Fprintln(env.Stdout)
				}
				writeStatus(env.Stdout, h)
			}
			return nil
		},
	}
	addHistoryFlags(c, hf)
	return c
}

func writeStatus(w io.Writer, h history) {
	title := h.Name
	if h.Class != "" {
		title += " (" + h.Class + ")"
	}
	fmt.Fprintf(w, "%s: %d pass(es), state %s\n", manifest.Escape(title), len(h.Passes), manifest.Escape(h.State))
	if len(h.Passes) == 0 {
		fmt.Fprintln(w, "  no pass yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tkind\tstarted\tgap\ttook\tentries\tchanged\tdeleted\tdata\tliteral\tscan\tdiff\ttransfer\tcommit\tresult")
	for i, p := range h.Passes {
		gap := "-"
		if p.GapSeconds > 0 {
			gap = shortDuration(time.Duration(p.GapSeconds * float64(time.Second)))
		}
		result := "ok"
		switch {
		case !p.OK:
			result = fmt.Sprintf("%d failed", p.Stats.Failed)
		case p.Quiet != nil && !*p.Quiet:
			result = "NOT QUIET"
		case p.Quiet != nil:
			result = "quiet"
		}
		if p.DryRun {
			result += " (dry run)"
		}
		if p.Queue != nil {
			result += fmt.Sprintf(" queue %d/%d", p.Queue.Src, p.Queue.Dst)
		}
		if n := p.Stats.Held; n > 0 {
			result += fmt.Sprintf(" %d held", n)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, p.Kind, p.Start.Local().Format("01-02 15:04:05"), gap,
			shortDuration(p.Duration), p.Stats.Entries, p.Changed(), p.Stats.Deleted, shortBytes(p.Stats.DataBytes), shortBytes(p.Stats.Literal),
			shortDuration(p.Phases.Scan), shortDuration(p.Phases.Diff), shortDuration(p.Phases.Transfer), shortDuration(p.Phases.Commit), result)
	}
	tw.Flush()
	if v := h.Verify; v != nil {
		verdict := "IDENTICAL"
		if len(v.NotCompared) > 0 {
			verdict = "IDENTICAL in what was compared (not compared: " + strings.Join(v.NotCompared, "; ") + ")"
		}
		if !v.Identical {
			verdict = fmt.Sprintf("DIFFERENT (%d differ, %d missing, %d extra, %d errors)", v.Differ, v.Missing, v.Extra, v.Errors)
		}
		fmt.Fprintf(w, "last verify: %s at %s (%s)\n", verdict, v.Time.Local().Format("2006-01-02 15:04:05"), shortDuration(v.Duration))
	} else {
		fmt.Fprintln(w, "last verify: never")
	}
}

func shortDuration(d time.Duration) string { return report.Duration(d) }

// estimateWindow predicts the final pass of every history after gap (or,
// with at set, after the time from each dataset's last pass to at).
func estimateWindow(hs []history, gap time.Duration, at time.Time) (*migrate.Window, error) {
	in := make([]migrate.History, len(hs))
	parallel := 1
	for i, h := range hs {
		in[i] = migrate.History{Name: h.Name, Class: h.Class, Passes: h.Passes, After: h.after, Probe: h.probe, Verify: h.Verify}
		parallel = max(parallel, h.parallel)
	}
	return migrate.EstimateWindow(in, parallel, gap, at)
}

func newEstimateCommand(env Env) *cobra.Command {
	hf := &historyFlags{}
	var gap time.Duration
	var at string
	var pf probeFlags
	c := &cobra.Command{
		Use:   "estimate [flags] SRC DST | --plan FILE | --state DIR",
		Short: "Predict how long the final pass will take",
		Long: `Predict the duration of the final pass (catchup --final) from the passes so far: the
change rate fitted against the gap between passes, and what a pass costs: its fixed cost
(the scans), per path written, per deletion and per byte, each measured by the passes
themselves (the initial copy's too, when the catch-ups found nothing to copy). Run two or
more catch-up passes at gaps like the one you will leave before the final pass; the more,
the tighter the range.

  --gap 30m                    the last catch-up runs 30 minutes before the final pass
  --at "2026-12-01 08:00"      the final pass starts then (gap: from each dataset's last pass)
  (neither)                    the final pass starts now

The answer gives a range and says what dominates: scanning (fixed, grows with the number
of files), many small changed files, or bytes to copy. With --plan, datasets are combined
as the plan runs them (parallel, nested datasets after the ones inside them).

--probe measures what is pending now instead of guessing it from the history: it scans
the source (on its host, over the connection for a remote source), compares it with the
last committed source manifest and counts new, changed, appended, deleted and metadata-only
paths. It writes nothing and takes no lock; it costs about a no-change scan of one side.
With --probe, --gap and --at say how long from now until the final pass starts: the change
expected meanwhile (at the fitted rate) is added.

The downtime window adds the verification after the final pass (learned from the last
msync verify: bytes hashed per second) and a plan's fixed steps ([window] stop_services =
"5m", dns = "10m", in the order the plan lists them).`,
		Args: historyArgs(hf),
		RunE: func(cmd *cobra.Command, args []string) error {
			if gap < 0 {
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("--gap %s: must not be negative", gap)}
			}
			var atT time.Time
			if at != "" {
				if gap != 0 {
					return &exitError{code: exitCodeUsage, err: errors.New("--gap and --at: give one")}
				}
				var err error
				if atT, err = parseAt(at); err != nil {
					return &exitError{code: exitCodeUsage, err: err}
				}
			}
			if pf.probe && len(args) == 2 {
				if _, err := migrate.ProbeRoute(args[0], args[1], pf.remote.Rsync); err != nil {
					return &exitError{code: exitCodeUsage, err: err}
				}
			}
			hs, p, err := hf.histories(args)
			if err != nil {
				return err
			}
			if pf.probe {
				if err := pf.run(cmd.Context(), env, hs, p, args); err != nil {
					return err
				}
			} else if len(pf.exclude) > 0 {
				return &exitError{code: exitCodeUsage, err: errors.New("--exclude applies to --probe")}
			}
			if gap == 0 && atT.IsZero() {
				atT = time.Now()
			}
			w, err := estimateWindow(hs, gap, atT)
			if err != nil {
				return &exitError{code: exitCodeUsage, err: err}
			}
			if p != nil {
				w.AddSteps(p.Steps)
			}
			if hf.json {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(w)
			}
			writeEstimate(env.Stdout, w)
			for _, d := range w.Datasets {
				if d.Error != "" {
					return &exitError{code: ExitFatal, err: fmt.Errorf("%s: %s", d.Name, d.Error)}
				}
			}
			return nil
		},
	}
	addHistoryFlags(c, hf)
	c.Flags().DurationVar(&gap, "gap", 0, "time between the last catch-up and the final pass (e.g. 30m)")
	c.Flags().StringVar(&at, "at", "", `when the final pass starts, "YYYY-MM-DD HH:MM" local time`)
	c.Flags().BoolVar(&pf.probe, "probe", false, "scan the source now and measure what is pending (writes nothing)")
	c.Flags().StringArrayVar(&pf.exclude, "exclude", nil, "with --probe: the passes' exclude patterns (a plan's are read from it)")
	addRemoteFlags(c, &pf.remote)
	return c
}

func parseAt(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`--at %q: want "YYYY-MM-DD HH:MM" (local time)`, s)
}

func writeEstimate(w io.Writer, win *migrate.Window) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "dataset\tclass\tcatch-ups\tgap\texpected changes\tfinal pass\trange\tdominated by")
	for _, d := range win.Datasets {
		if d.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t%s\n", d.Name, d.Class, manifest.Escape(d.Error))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.0f paths, %s\t%s\t%s - %s\t%s\n", d.Name, d.Class, d.Passes, shortDuration(secsDur(d.Gap)),
			d.Files, shortBytes(int64(d.Bytes)), shortDuration(secsDur(d.Seconds)), shortDuration(secsDur(d.Low)), shortDuration(secsDur(d.High)), d.Explain)
	}
	tw.Flush()
	for _, d := range win.Datasets {
		if d.Probe != nil {
			writeProbe(w, d)
		}
	}
	when := ""
	if win.At != nil {
		when = " starting " + win.At.Local().Format("2006-01-02 15:04")
	}
	fmt.Fprintf(w, "final pass%s: about %s (%s - %s)", when, shortDuration(secsDur(win.Seconds)), shortDuration(secsDur(win.Low)), shortDuration(secsDur(win.High)))
	if len(win.Datasets) > 1 {
		fmt.Fprintf(w, ", %d dataset(s) %d at a time", len(win.Datasets), win.Parallel)
	}
	fmt.Fprintln(w, ", including the re-check that proves the source quiet")
	writeWindow(w, win)
}

func secsDur(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
