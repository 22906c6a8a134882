package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/msync/msync/report"
	"github.com/spf13/cobra"
)

func newReportCommand(env Env) *cobra.Command {
	hf := &historyFlags{}
	var out, title string
	var gap time.Duration
	c := &cobra.Command{
		Use:   "report [flags] SRC DST | --plan FILE | --state DIR",
		Short: "Write one self-contained HTML page: datasets, convergence chart, final window, verification",
		Long: `Write an HTML report of the migration so far, one file with no network needs (inline
CSS and SVG, no scripts): each dataset with its class, passes and last verification (green
only when identical and no pass ran since), a chart of changed paths and pass duration per
pass converging, and the predicted final window (as msync estimate; --gap as there, default:
the final pass starts now).`,
		Args: historyArgs(hf),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("report: -o FILE is required")}
			}
			hs, p, err := hf.histories(args)
			if err != nil {
				return err
			}
			var at time.Time
			gapNote := fmt.Sprintf("last catch-up %s before it", shortDuration(gap))
			if gap == 0 {
				at = time.Now()
				gapNote = "if it started now"
			}
			w, err := estimateWindow(hs, gap, at)
			if err != nil {
				return fatal(err)
			}
			d := report.Data{Title: title, Generated: time.Now()}
			if p != nil {
				d.Plan = p.Path
			}
			if d.Title == "" {
				d.Title = "msync migration report"
			}
			fitted := 0
			for i, h := range hs {
				ds := report.Dataset{Name: h.Name, Class: h.Class, Source: h.Source, Dest: h.Dest, Passes: h.Passes, Verify: h.Verify}
				if pr := w.Datasets[i]; pr.Prediction != nil {
					ds.Estimate = pr.Prediction
					fitted++
				} else {
					ds.EstimateErr = pr.Error
				}
				d.Datasets = append(d.Datasets, ds)
			}
			if fitted == len(hs) {
				d.Window = &report.Window{Total: secsDur(w.Seconds), Low: secsDur(w.Low), High: secsDur(w.High), Gap: gapNote, Parallel: w.Parallel}
			}
			if err := writeFileAtomic(out, func(wr io.Writer) error { return report.Write(wr, d) }); err != nil {
				return fatal(fmt.Errorf("report: %w", err))
			}
			fmt.Fprintf(env.Stdout, "wrote %s\n", out)
			return nil
		},
	}
	addHistoryFlags(c, hf)
	c.Flags().StringVarP(&out, "output", "o", "", "HTML file to write")
	c.Flags().StringVar(&title, "title", "", "page title (default: msync migration report)")
	c.Flags().DurationVar(&gap, "gap", 0, "predict the final pass for this gap after the last catch-up (default: starting now)")
	return c
}
