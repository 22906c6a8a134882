package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/msync/msync/migrate"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/record"
	"github.com/msync/msync/sync/engine"
	"github.com/spf13/cobra"
)

type passFlags struct {
	state            string
	dryRun           bool
	itemize          bool
	stats            bool
	json             bool
	excludes         []string
	quiet            bool
	progress         bool
	noProgress       bool
	fsync            string
	delta            string
	deleteExtraneous bool
	trustDest        bool
	final            bool
	noXattrs         bool
	sparse           bool
	noDirectIO       bool
	owners           bool
	noOwners         bool
	workers          int
	remote           migrate.Remote
	plan             planFlags
}

func addCommonFlags(c *cobra.Command, f *passFlags) {
	fl := c.Flags()
	fl.StringVar(&f.state, "state", "", "state directory for this SRC/DST pair (default: $XDG_STATE_HOME/msync/NAME)")
	fl.StringArrayVar(&f.excludes, "exclude", nil, "exclude paths matching this rsync-style pattern (repeatable)")
	fl.BoolVar(&f.json, "json", false, "print one JSON summary object on stdout")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print errors only")
	fl.BoolVar(&f.progress, "progress", false, "show a progress bar (default: on when stderr is a terminal)")
	fl.BoolVar(&f.noProgress, "no-progress", false, "never show a progress bar")
	fl.BoolVar(&f.noXattrs, "no-xattrs", false, "do not copy or compare extended attributes")
	fl.BoolVar(&f.owners, "owners", false, "copy numeric owner and group (default when run as root)")
	fl.BoolVar(&f.noOwners, "no-owners", false, "do not copy owner and group, even as root")
}

func newPassCommand(env Env, kind string) *cobra.Command {
	f := &passFlags{}
	c := &cobra.Command{
		Use:  kind + " [flags] SRC DST | --plan FILE [--only NAME]...",
		Args: planArgs(&f.plan, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.plan.path != "" {
				return runPlanPasses(cmd, env, engine.Kind(kind), f)
			}
			return runPass(cmd, env, engine.Kind(kind), f, args[0], args[1])
		},
	}
	addPlanFlags(c, &f.plan)
	addRemoteFlags(c, &f.remote)
	switch kind {
	case "initial":
		c.Short = "Copy SRC into DST in full and record the first manifests"
		c.Long = `Copy the contents of SRC into DST (like rsync -aHX SRC/ DST/): files, directories,
symlinks (verbatim), hard links, fifos and devices (as root), permissions, mtimes to the
nanosecond, numeric owners (as root) and extended attributes. DST is created if missing.
Nothing at DST is deleted (see catchup --delete-extraneous). Every file is written under a
temporary name beside its destination and renamed into place, so an interrupted pass never
leaves a half-written file; the next pass completes it. Manifests of both sides are committed
to the state directory only when the pass completed.` + endpointHelp
	case "catchup":
		c.Short = "Copy what changed since the last pass; --final for the downtime pass"
		c.Long = `Scan both sides (in parallel) and copy only what changed: files whose size or mtime
differ, and metadata-only changes. Files the source removed since the last committed pass
are deleted at DST; files msync never put there are kept unless --delete-extraneous.
Content hashes are reused from the last manifest for files whose identity (size, mtime,
ctime, inode) is unchanged.

With --final (run after services are stopped) the source is re-scanned after the pass and
the command exits 24, listing the paths, unless nothing changed during the pass.` + endpointHelp
		c.Flags().BoolVar(&f.final, "final", false, "prove the source stayed quiet: re-scan after the pass, exit 24 listing what moved")
		c.Flags().BoolVar(&f.trustDest, "trust-dest", false, "compare with DST's manifest from the last pass instead of scanning DST (half the work; only when nothing else writes to DST; ignored after an interrupted pass)")
	}
	fl := c.Flags()
	addCommonFlags(c, f)
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "show what would change, change nothing")
	fl.BoolVarP(&f.itemize, "itemize-changes", "i", false, "list each change in rsync's %i format (e.g. >f.st...... path)")
	fl.BoolVar(&f.stats, "stats", false, "print transfer statistics at the end")
	fl.StringVar(&f.fsync, "fsync", "pass", "when to flush data to disk: file (each file before rename), pass (once before commit), none")
	fl.StringVar(&f.delta, "delta", "auto", "send changed files as deltas: auto (deltas from a remote source, whole files between local trees), always, never")
	fl.BoolVar(&f.deleteExtraneous, "delete-extraneous", false, "also delete DST paths that are not in SRC and that msync did not put there")
	fl.BoolVarP(&f.sparse, "sparse", "S", false, "leave holes where aligned 4 KiB blocks of written files are zero (like rsync -S)")
	fl.BoolVar(&f.noDirectIO, "no-direct-io", false, "copy files of 1 MiB or more between local trees through the page cache (default: write them with O_DIRECT where the file system allows it, which spares the page cache)")
	fl.IntVar(&f.workers, "workers", 0, "files transferred in parallel (default 4 locally, 32 in flight from a remote source)")
	return c
}

// ownersEnabled reports whether owners are copied and compared here.
func (f *passFlags) ownersEnabled() bool {
	o := migrate.Options{Owners: f.owners, NoOwners: f.noOwners}
	return o.OwnersEnabled()
}

// options are the pass's options for the library; log and onItem may be nil.
func (f *passFlags) options(env Env, kind engine.Kind, log io.Writer, onItem func(engine.Item)) migrate.Options {
	if log == nil {
		log = env.Stderr
	}
	if f.quiet {
		log = io.Discard
	}
	return migrate.Options{Kind: kind, State: f.state, DryRun: f.dryRun, Final: f.final, DeleteExtraneous: f.deleteExtraneous,
		TrustDest: f.trustDest, NoXattrs: f.noXattrs, Sparse: f.sparse, NoDirectIO: f.noDirectIO, Owners: f.owners,
		NoOwners: f.noOwners, Fsync: f.fsync, Delta: f.delta, Exclude: f.excludes, Workers: f.workers, Remote: f.remote,
		Stderr: env.Stderr, Log: log, OnItem: onItem}
}

func runPass(cmd *cobra.Command, env Env, kind engine.Kind, f *passFlags, src, dst string) error {
	ctx := cmd.Context()
	if err := f.check(); err != nil {
		return err
	}
	var items []string
	var onItem func(engine.Item)
	if f.itemize && !f.quiet {
		onItem = func(it engine.Item) {
			if f.json {
				items = append(items, it.String())
				return
			}
			fmt.Fprintln(env.Stdout, it.String())
		}
	}
	counters := &engine.Counters{}
	stop := startProgress(env, f.progress, f.noProgress || f.quiet || f.json, counters)
	start := time.Now()
	o := f.options(env, kind, nil, onItem)
	o.Counters = counters
	res, sd, err := migrate.Pass(ctx, src, dst, o)
	stop()
	elapsed := time.Since(start)
	if err != nil {
		return fatal(fmt.Errorf("%s %s %s: %w", kind, src, dst, err))
	}
	code := migrate.PassCode(res, f.final)
	if f.json {
		out := map[string]any{"command": string(kind), "src": src, "dst": dst, "state": sd, "dry_run": f.dryRun,
			"final": f.final, "result": record.ResultToJSON(res), "exit_code": code, "elapsed_seconds": elapsed.Seconds()}
		if f.itemize {
			out["items"] = items
		}
		if f.final {
			out["quiet"] = len(res.NotQuiet) == 0
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		printOutcome(env, f, res, elapsed, "")
	}
	if code != ExitOK {
		return &exitError{code: code, err: summaryError(res, code)}
	}
	return nil
}

// printOutcome prints a pass's problems, statistics and, for a final pass,
// whether the source was quiet; prefix names the dataset of a plan.
func printOutcome(env Env, f *passFlags, res *record.Result, elapsed time.Duration, prefix string) {
	for _, p := range res.Problems {
		if !p.Skipped {
			fmt.Fprintf(env.Stderr, "msync: %s%s\n", prefix, manifest.EscapeLines(p.Err))
		}
	}
	if f.stats && !f.quiet {
		if prefix != "" {
			fmt.Fprintf(env.Stdout, "\n%s", prefix)
		}
		printStats(env.Stdout, res, elapsed, f.dryRun)
	}
	if f.final {
		if len(res.NotQuiet) > 0 {
			fmt.Fprintf(env.Stderr, "msync: %ssource was NOT quiet during the final pass; %d path(s) moved:\n", prefix, len(res.NotQuiet))
			for i, p := range res.NotQuiet {
				if i == 50 {
					fmt.Fprintf(env.Stderr, "  ... and %d more\n", len(res.NotQuiet)-50)
					break
				}
				fmt.Fprintf(env.Stderr, "  %s\n", manifest.Escape(p))
			}
		} else if !f.quiet {
			fmt.Fprintf(env.Stderr, "msync: %ssource was quiet during the final pass\n", prefix)
		}
	}
}

// check validates the flags that do not depend on SRC and DST.
func (f *passFlags) check() error {
	if _, err := engine.ParseFsync(f.fsync); err != nil {
		return &exitError{code: exitCodeUsage, err: err}
	}
	if _, err := engine.ParseDelta(f.delta); err != nil {
		return &exitError{code: exitCodeUsage, err: err}
	}
	if _, err := filter.New(f.excludes); err != nil {
		return &exitError{code: exitCodeUsage, err: err}
	}
	if f.workers < 0 || f.workers > 256 {
		return &exitError{code: exitCodeUsage, err: fmt.Errorf("--workers=%d: want 1..256", f.workers)}
	}
	return nil
}

func summaryError(res *record.Result, code int) error {
	switch code {
	case ExitPartial:
		return fmt.Errorf("%d file(s) failed (see above); the others were copied", res.Stats.Failed)
	case ExitVanished:
		if res.Stats.Vanished > 0 {
			return fmt.Errorf("%d source file(s) vanished during the pass", res.Stats.Vanished)
		}
		return fmt.Errorf("source changed during the final pass")
	}
	return nil
}

func printStats(w io.Writer, res *record.Result, elapsed time.Duration, dry bool) {
	s := res.Stats
	fmt.Fprintf(w, "\nNumber of files: %d (reg: %d, dir: %d, link: %d, special: %d)\n", s.Entries, s.Files, s.Dirs, s.Symlinks, s.Specials)
	fmt.Fprintf(w, "Number of created files: %d\n", s.Created)
	fmt.Fprintf(w, "Number of updated files: %d\n", s.Updated)
	fmt.Fprintf(w, "Number of metadata-only changes: %d\n", s.MetaOnly)
	fmt.Fprintf(w, "Number of hard links made: %d\n", s.HardLinks)
	fmt.Fprintf(w, "Number of deleted files: %d\n", s.Deleted)
	fmt.Fprintf(w, "Number of extraneous files kept: %d\n", s.Kept)
	fmt.Fprintf(w, "Total file size: %s\n", humanBytes(s.SrcBytes))
	fmt.Fprintf(w, "Total transferred file size: %s\n", humanBytes(s.DataBytes))
	fmt.Fprintf(w, "Literal data: %s\n", humanBytes(s.Literal))
	fmt.Fprintf(w, "Matched data: %s (deltas: %d, appends: %d)\n", humanBytes(s.Matched), s.Deltas, s.Appended)
	fmt.Fprintf(w, "Bytes written: %s\n", humanBytes(s.Written))
	fmt.Fprintf(w, "Wire bytes (remote: counted on the connection; local: what a remote pass would send): %s\n", humanBytes(s.WireBytes))
	if s.Temps > 0 {
		fmt.Fprintf(w, "Leftover temp files removed: %d\n", s.Temps)
	}
	fmt.Fprintf(w, "Failed: %d, vanished: %d, skipped: %d\n", s.Failed, s.Vanished, s.Skipped)
	rate := float64(s.Written) / elapsed.Seconds()
	fmt.Fprintf(w, "Elapsed: %s (%.1f MiB/s written)", elapsed.Round(time.Millisecond), rate/(1<<20))
	if dry {
		fmt.Fprint(w, " (DRY RUN)")
	}
	fmt.Fprintln(w)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
