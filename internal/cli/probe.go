package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/migrate"
	"github.com/msync/msync/plan"
	"github.com/msync/msync/sync/class"
)

// probeFlags are estimate's --probe and what it needs to reach the source.
type probeFlags struct {
	probe   bool
	exclude []string
	remote  migrate.Remote
}

// run probes the source of every history: a plan's datasets, the SRC DST
// pair given, or the pair the last pass in a --state directory recorded.
func (pf *probeFlags) run(ctx context.Context, env Env, hs []history, p *plan.Plan, args []string) error {
	for i := range hs {
		h := &hs[i]
		src, dst, exclude := h.Source, h.Dest, pf.exclude
		switch {
		case p != nil:
			src, dst, exclude = p.Local(src, migrate.IsRemote(src)), p.Local(dst, migrate.IsRemote(dst)), h.exclude
		case len(args) == 2:
			src, dst = args[0], args[1]
		default:
			for _, ps := range h.Passes {
				if ps.Src != "" {
					src, dst = ps.Src, ps.Dst
				}
			}
		}
		if src == "" || dst == "" {
			return &exitError{code: exitCodeUsage, err: fmt.Errorf("--probe: %s: no pass recorded its SRC and DST yet (run msync initial first, or give SRC DST instead of --state)", h.Name)}
		}
		var cl class.Name
		if h.Class != "" {
			var err error
			if cl, err = class.Parse(h.Class); err != nil {
				return fatal(fmt.Errorf("--probe: %s: %w", h.Name, err))
			}
		}
		r, err := migrate.Probe(ctx, migrate.ProbeOptions{State: h.State, Src: src, Dst: dst, Class: cl, MaxAge: h.maxAge, Exclude: exclude, Remote: pf.remote, Stderr: env.Stderr})
		switch {
		case migrate.IsUsage(err):
			return &exitError{code: exitCodeUsage, err: fmt.Errorf("%s: %w", h.Name, err)}
		case errors.Is(err, migrate.ErrNoState):
			return fatal(fmt.Errorf("--probe: %s: %w", h.Name, err))
		case err != nil:
			return fatal(fmt.Errorf("--probe: %s: %w", h.Name, err))
		}
		h.probe = r
	}
	return nil
}

// writeProbe says what a probe found pending and what it cost.
func writeProbe(w io.Writer, d migrate.Prediction) {
	pb := d.Probe
	fmt.Fprintf(w, "probe: %s: scanned %d entries in %.2f s (%s): pending %d new (%s), %d changed (%s), %d appended (%s of tails), %d deleted, %d metadata only\n",
		manifest.Escape(d.Name), pb.Entries, pb.Took.Seconds(), pb.Way, pb.New.Paths, shortBytes(pb.New.Bytes), pb.Changed.Paths, shortBytes(pb.Changed.Bytes),
		pb.Appended.Paths, shortBytes(pb.Appended.Bytes), pb.Deleted.Paths, pb.Meta.Paths)
	if pb.Problems > 0 {
		fmt.Fprintf(w, "probe: %s: %d path(s) could not be scanned (vanished or unreadable): not counted\n", manifest.Escape(d.Name), pb.Problems)
	}
	if pb.Held > 0 {
		fmt.Fprintf(w, "probe: %s: %d file(s) the final pass leaves behind (the class's rules)\n", manifest.Escape(d.Name), pb.Held)
	}
}

// writeWindow prints the downtime window: the final pass, the verification
// and the plan's fixed steps, each with its range, and their sum.
func writeWindow(w io.Writer, win *migrate.Window) {
	fmt.Fprintln(w, "downtime window:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  step\texpected\trange\tnote")
	for _, t := range append(append([]migrate.Term(nil), win.Terms...), win.Downtime) {
		rng := "-"
		if t.Low != t.High {
			rng = shortDuration(secsDur(t.Low)) + " - " + shortDuration(secsDur(t.High))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.Name, shortDuration(secsDur(t.Seconds)), rng, t.Note)
	}
	tw.Flush()
}
