package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/migrate"
	"github.com/msync/msync/report"
	"github.com/msync/msync/verify"

	"github.com/msync/msync/plan"
	"github.com/msync/msync/record"
	"github.com/msync/msync/sync/engine"
	"github.com/spf13/cobra"
)

type planFlags struct {
	path string
	only []string
}

func addPlanFlags(c *cobra.Command, pf *planFlags) {
	c.Flags().StringVar(&pf.path, "plan", "", "run every dataset of this plan file (see msync plan init) instead of SRC DST")
	c.Flags().StringArrayVar(&pf.only, "only", nil, "with --plan: run only this dataset (repeatable)")
}

// planArgs accepts n arguments, or none with --plan.
func planArgs(pf *planFlags, n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if pf.path != "" {
			if len(args) != 0 {
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("%s: --plan takes the datasets from the plan; no SRC or DST arguments (got %d)", cmd.Name(), len(args))}
			}
			return nil
		}
		if len(pf.only) > 0 {
			return &exitError{code: exitCodeUsage, err: fmt.Errorf("%s: --only needs --plan", cmd.Name())}
		}
		return usageArgs(n)(cmd, args)
	}
}

// loadPlan loads the plan of a pass or verify; --state does not apply.
func (f *passFlags) loadPlan() (*plan.Plan, []*plan.Dataset, error) {
	if f.state != "" {
		return nil, nil, &exitError{code: exitCodeUsage, err: fmt.Errorf("--state: with --plan each dataset has its own state directory (state_dir in the plan)")}
	}
	return f.plan.load()
}

func (pf *planFlags) load() (*plan.Plan, []*plan.Dataset, error) {
	p, err := plan.Load(pf.path)
	if err != nil {
		return nil, nil, &exitError{code: exitCodeUsage, err: err}
	}
	ds, err := p.Select(pf.only)
	if err != nil {
		return nil, nil, &exitError{code: exitCodeUsage, err: err}
	}
	return p, ds, nil
}

// datasetOutcome is what one dataset of a plan run came to.
type datasetOutcome struct {
	Name     string         `json:"name"`
	Class    string         `json:"class"`
	Src      string         `json:"src"`
	Dst      string         `json:"dst"`
	State    string         `json:"state,omitempty"`
	ExitCode int            `json:"exit_code"`
	Error    string         `json:"error,omitempty"`
	Elapsed  float64        `json:"elapsed_seconds"`
	Result   *record.Result `json:"result,omitempty"` // encoded by MarshalJSON
	Items    []string       `json:"items,omitempty"`
}

// MarshalJSON encodes the outcome with its result in its JSON form
// (record.ResultJSON).
func (o datasetOutcome) MarshalJSON() ([]byte, error) {
	type plain datasetOutcome // the fields, without this method
	return json.Marshal(struct {
		plain
		Result *record.ResultJSON `json:"result,omitempty"`
		Items  []string           `json:"items,omitempty"`
	}{plain(o), record.ResultToJSON(o.Result), o.Items})
}

// prefixWriter prefixes each line with the dataset's name.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimPrefix(string(p.buf[:i]), "msync: ")
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, line)
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func runPlanPasses(cmd *cobra.Command, env Env, kind engine.Kind, f *passFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	p, ds, err := f.loadPlan()
	if err != nil {
		return err
	}
	outs := make([]datasetOutcome, len(ds))
	var mu sync.Mutex // one dataset's lines at a time
	start := time.Now()
	if !f.quiet && !f.json {
		fmt.Fprintf(env.Stderr, "msync: %s of %d dataset(s) from %s, %d at a time\n", kind, len(ds), p.Path, p.Workers())
	}
	hooks := migrate.PlanHooks{
		Start: func(i int, d *plan.Dataset) (io.Writer, func(engine.Item)) {
			if f.quiet {
				return nil, nil // the pass's notes are discarded
			}
			prefix := "[" + d.Name + "] "
			log := &prefixWriter{mu: &mu, w: env.Stderr, prefix: "msync: " + prefix}
			if !f.itemize {
				return log, nil
			}
			return log, func(it engine.Item) {
				mu.Lock()
				defer mu.Unlock()
				if f.json {
					outs[i].Items = append(outs[i].Items, it.String())
					return
				}
				fmt.Fprintf(env.Stdout, "%s%s\n", prefix, it)
			}
		},
		Done: func(i int, dp *migrate.DatasetPass) {
			mu.Lock()
			defer mu.Unlock()
			outs[i] = passOutcome(env, f, kind, dp, outs[i].Items)
		},
	}
	_, code := migrate.RunPlan(cmd.Context(), p, ds, f.options(env, kind, nil, nil), hooks)
	if f.json {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"command": string(kind), "plan": p.Path, "final": f.final, "dry_run": f.dryRun,
			"datasets": outs, "exit_code": code, "elapsed_seconds": time.Since(start).Seconds()})
	} else if !f.quiet {
		writePassSummary(env.Stdout, outs, f.final, time.Since(start))
	}
	if code != ExitOK {
		return &exitError{code: code, err: fmt.Errorf("%s --plan %s: not every dataset succeeded (see the table)", kind, p.Path)}
	}
	return nil
}

// passOutcome prints what one dataset's pass came to (unless --json) and
// returns its line of the --json output.
func passOutcome(env Env, f *passFlags, kind engine.Kind, dp *migrate.DatasetPass, items []string) datasetOutcome {
	d := dp.Dataset
	prefix := "[" + d.Name + "] "
	out := datasetOutcome{Name: d.Name, Class: d.Class, Src: dp.Src, Dst: dp.Dst, State: dp.State, ExitCode: dp.ExitCode,
		Elapsed: dp.Elapsed.Seconds(), Result: dp.Result, Items: items}
	if dp.Err != nil {
		out.Error = dp.Err.Error()
		if !f.json {
			fmt.Fprintf(env.Stderr, "msync: %s%s %s %s: %s\n", prefix, kind, manifest.Escape(dp.Src), manifest.Escape(dp.Dst), manifest.EscapeLines(out.Error))
		}
	} else if !f.json {
		printOutcome(env, f, dp.Result, dp.Elapsed, prefix)
	}
	return out
}

func writePassSummary(w io.Writer, outs []datasetOutcome, final bool, elapsed time.Duration) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "dataset\tclass\tentries\tchanged\tdeleted\tdata\ttime\tresult")
	for _, o := range outs {
		result := "ok"
		switch {
		case o.Error != "":
			result = "ERROR"
		case o.ExitCode == ExitPartial:
			result = fmt.Sprintf("%d failed", o.Result.Stats.Failed)
		case o.ExitCode == ExitVanished && final && len(o.Result.NotQuiet) > 0:
			result = "NOT QUIET"
		case o.ExitCode == ExitVanished:
			result = fmt.Sprintf("%d vanished", o.Result.Stats.Vanished)
		}
		var notes []string
		if r := o.Result; r != nil {
			if r.Stats.Held > 0 {
				notes = append(notes, fmt.Sprintf("%d held", r.Stats.Held))
			}
			if q := r.Queue; q != nil {
				notes = append(notes, fmt.Sprintf("queue %d/%d", q.Src, q.Dst))
			}
		}
		if len(notes) > 0 {
			result += " (" + strings.Join(notes, ", ") + ")"
		}
		if r := o.Result; r != nil {
			s := r.Stats
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%.1fs\t%s\n", o.Name, o.Class, s.Entries, s.Changed()-s.Deleted,
				s.Deleted, shortBytes(s.DataBytes), o.Elapsed, result)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t%.1fs\t%s\n", o.Name, o.Class, o.Elapsed, result)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "%d dataset(s) in %s", len(outs), elapsed.Round(10*time.Millisecond))
	if final {
		fmt.Fprint(w, "; queue = queued messages at SRC/DST")
	}
	fmt.Fprintln(w)
}

func shortBytes(n int64) string { return report.Bytes(n) }

func newPlanCommand(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "plan",
		Short: "Write a plan file: the datasets of a migration, each with its class",
	}
	var out, dest, stateDir string
	var force bool
	initCmd := &cobra.Command{
		Use:   "init [flags] SRC",
		Short: "Inspect SRC and write a plan with one dataset per recognised area",
		Long: `Look at the tree at SRC (three levels deep) and write a plan file with one dataset
per area it recognises, each with the class that carries msync's knowledge of it:

  home              home directories (dotfiles, Maildir/)
  mailman-archives  archives/private/LIST.mbox grow by appending: the tail alone is sent
  mailman-qfiles    queues: *.tmp/*.bak skipped, vanishing files normal, old bad/ and
                    shunt/ entries (max_age) left behind and listed
  darcs             _darcs content-addressed files copied once; hashed_inventory last
  exim-spool        input/ID-D and ID-H copied as a pair; half pairs wait for --final
  generic           everything else

The file explains each choice in comments; edit it, then run any command with
--plan FILE (and --only NAME to pick datasets).`,
		Args: usageArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("plan init: -o FILE is required")}
			}
			if _, err := os.Stat(out); err == nil && !force {
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("plan init: %s exists (use --force to replace it)", out)}
			}
			ps, err := plan.Init(args[0], dest)
			if err != nil {
				return fatal(err)
			}
			if stateDir == "" {
				stateDir = strings.TrimSuffix(baseName(out), ".toml") + ".state"
			}
			if err := writeFileAtomic(out, func(w io.Writer) error { return plan.Write(w, args[0], ps, stateDir, time.Now()) }); err != nil {
				return fatal(fmt.Errorf("plan init: %w", err))
			}
			if _, err := plan.Load(out); err != nil {
				return fatal(fmt.Errorf("plan init wrote a plan it cannot read (a bug): %w", err))
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "dataset\tclass\tsource\tdest")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Class, p.Source, p.Dest)
			}
			tw.Flush()
			fmt.Fprintf(env.Stdout, "wrote %s (%d datasets)\n", out, len(ps))
			if dest == "" {
				fmt.Fprintln(env.Stdout, "set each dataset's dest before running it (or use --dest)")
			}
			return nil
		},
	}
	initCmd.Flags().StringVarP(&out, "output", "o", "", "plan file to write")
	initCmd.Flags().StringVar(&dest, "dest", "", "where SRC goes: each dataset's dest is its path under it")
	initCmd.Flags().StringVar(&stateDir, "state-dir", "", "state directory of the plan, relative to the plan file (default: NAME.state)")
	initCmd.Flags().BoolVar(&force, "force", false, "replace an existing plan file")
	c.AddCommand(initCmd)
	return c
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

type verifyOutcome struct {
	Name     string         `json:"name"`
	Class    string         `json:"class"`
	Src      string         `json:"src"`
	Dst      string         `json:"dst"`
	ExitCode int            `json:"exit_code"`
	Error    string         `json:"error,omitempty"`
	Elapsed  float64        `json:"elapsed_seconds"`
	Report   *verify.Report `json:"report,omitempty"`
}

func runPlanVerify(cmd *cobra.Command, env Env, f *passFlags, all bool, workers int) error {
	p, ds, err := f.loadPlan()
	if err != nil {
		return err
	}
	start := time.Now()
	vs, code := migrate.RunPlanVerify(cmd.Context(), p, ds, f.verifyOptions(env, all, workers))
	outs := make([]verifyOutcome, len(vs))
	for i, v := range vs {
		d := v.Dataset
		outs[i] = verifyOutcome{Name: d.Name, Class: d.Class, Src: v.Src, Dst: v.Dst, ExitCode: v.ExitCode,
			Elapsed: v.Elapsed.Seconds(), Report: v.Report}
		switch {
		case v.Err != nil:
			outs[i].Error = v.Err.Error()
		case v.RecordErr != nil:
			outs[i].Error = "could not record the result: " + v.RecordErr.Error()
		}
	}
	if f.json {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"command": "verify", "plan": p.Path, "datasets": outs, "exit_code": code,
			"identical": code == ExitOK, "elapsed_seconds": time.Since(start).Seconds()})
	} else {
		printPlanVerify(env, outs, f.quiet, all)
		if !f.quiet {
			writeVerifySummary(env.Stdout, outs, code, time.Since(start))
		}
	}
	if code == ExitFatal {
		return &exitError{code: code, err: fmt.Errorf("verify --plan %s: a dataset could not be verified", p.Path)}
	}
	if code != ExitOK {
		return &exitError{code: ExitDiffer}
	}
	return nil
}

// printPlanVerify prints each dataset's error and, unless quiet, its lines
// ("~" ones only with --all: the table counts them).
func printPlanVerify(env Env, outs []verifyOutcome, quiet, all bool) {
	for _, o := range outs {
		if o.Error != "" {
			fmt.Fprintf(env.Stderr, "msync: [%s] verify %s %s: %s\n", o.Name, manifest.Escape(o.Src), manifest.Escape(o.Dst), manifest.EscapeLines(o.Error))
		}
		if o.Report == nil || quiet {
			continue
		}
		for _, l := range o.Report.Lines {
			if l.Code == '~' && !all {
				continue
			}
			fmt.Fprintf(env.Stdout, "[%s] %s\n", o.Name, l)
		}
	}
}

// writeVerifySummary writes the table of a plan's verification and its
// verdict.
func writeVerifySummary(w io.Writer, outs []verifyOutcome, code int, elapsed time.Duration) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "dataset\tclass\tsame\tdiffer\tmissing\textra\terrors\tleft behind\thashed\ttime\tresult")
	var notCompared []string
	for _, o := range outs {
		if o.Report == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%.1fs\tERROR\n", o.Name, o.Class, o.Elapsed)
			continue
		}
		c := o.Report.Totals
		verdict := "IDENTICAL"
		if len(o.Report.NotCompared) > 0 {
			verdict = "IDENTICAL in what was compared"
			notCompared = append(notCompared, o.Name+": "+strings.Join(o.Report.NotCompared, "; "))
		}
		if !o.Report.Identical {
			verdict = "DIFFERENT"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.1fs\t%s\n", o.Name, o.Class, c.Same, c.Differ, c.Missing, c.Extra, c.Errors, c.Held,
			shortBytes(c.Bytes), o.Elapsed, verdict)
	}
	tw.Flush()
	verdict := "IDENTICAL: every dataset matches"
	if len(notCompared) > 0 {
		fmt.Fprintln(w, "not compared:")
		for _, n := range notCompared {
			fmt.Fprintln(w, "  "+n)
		}
		verdict = "IDENTICAL in what was compared: every dataset matches"
	}
	if code != ExitOK {
		verdict = "DIFFERENT: see the datasets above"
	}
	fmt.Fprintf(w, "%s (%s, %s)\n", verdict, "xxhash64 of every file, each side read on its own host", elapsed.Round(10*time.Millisecond))
}
