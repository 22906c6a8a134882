package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/record"
	"github.com/msync/msync/sync/class"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport"
	"github.com/msync/msync/transport/remote"
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
	remote           remoteFlags
	plan             planFlags
	// Set per dataset when running a plan.
	class  class.Name
	maxAge time.Duration
	onItem func(engine.Item)
	logTo  io.Writer // notes of the pass; nil means stderr
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

func stateDir(flag, src, dst string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if isRemote(src) {
		ad, err := filepath.Abs(dst)
		if err != nil {
			return "", err
		}
		return state.DefaultDir(src, ad)
	}
	as, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	ad, err := filepath.Abs(dst)
	if err != nil {
		return "", err
	}
	return state.DefaultDir(as, ad)
}

func (f *passFlags) ownersEnabled() bool {
	if f.noOwners {
		return false
	}
	return f.owners || os.Geteuid() == 0
}

func runPass(cmd *cobra.Command, env Env, kind engine.Kind, f *passFlags, src, dst string) error {
	ctx := cmd.Context()
	if err := f.check(); err != nil {
		return err
	}
	var items []string
	if f.itemize && !f.quiet {
		f.onItem = func(it engine.Item) {
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
	res, sd, err := f.execute(ctx, env, kind, src, dst, counters)
	stop()
	elapsed := time.Since(start)
	if err != nil {
		return fatal(fmt.Errorf("%s %s %s: %w", kind, src, dst, err))
	}
	code := passCode(res, f.final)
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

// passCode is the exit code a pass's result earns.
func passCode(res *engine.Result, final bool) int {
	code := ExitOK
	switch {
	case res.Stats.Failed > 0:
		code = ExitPartial
	case res.Stats.Vanished > 0:
		code = ExitVanished
	}
	if final && len(res.NotQuiet) > 0 && code == ExitOK {
		code = ExitVanished
	}
	return code
}

// printOutcome prints a pass's problems, statistics and, for a final pass,
// whether the source was quiet; prefix names the dataset of a plan.
func printOutcome(env Env, f *passFlags, res *engine.Result, elapsed time.Duration, prefix string) {
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

// execute runs one pass from src to dst and returns its result and the
// state directory used ("" when it is on DST's host).
func (f *passFlags) execute(ctx context.Context, env Env, kind engine.Kind, src, dst string, counters *engine.Counters) (*engine.Result, string, error) {
	fsync, err := engine.ParseFsync(f.fsync)
	if err != nil {
		return nil, "", err
	}
	dm, err := engine.ParseDelta(f.delta)
	if err != nil {
		return nil, "", err
	}
	srcEP, dstEP, err := f.remote.endpoints(src, dst)
	if err != nil {
		return nil, "", err
	}
	sd := f.state
	switch {
	case dstEP.Rsync():
		// Stock rsync keeps no state: a push to it keeps its state here.
		if err := f.refuseForRsyncPush(); err != nil {
			return nil, "", err
		}
		if sd == "" {
			as, err := filepath.Abs(src)
			if err != nil {
				return nil, "", err
			}
			if sd, err = state.DefaultDir(as, dst); err != nil {
				return nil, "", err
			}
		}
	case !dstEP.Remote():
		if sd, err = stateDir(f.state, src, dst); err != nil {
			return nil, "", err
		}
	}
	o := engine.Options{Kind: kind, Src: src, Dst: dst, StateDir: sd, Final: f.final, DryRun: f.dryRun,
		DeleteExtraneous: f.deleteExtraneous, TrustDest: f.trustDest, Exclude: f.excludes, Xattrs: !f.noXattrs, Sparse: f.sparse, NoDirectIO: f.noDirectIO, Owners: f.ownersEnabled(),
		Fsync: fsync, Delta: dm, Workers: f.workers, Counters: counters, Log: f.log(env), OnItem: f.onItem}
	if srcEP.Rsync() {
		// rsync's protocol 27 carries no extended attributes.
		o.Xattrs = false
	}
	if f.class != "" {
		o.Rules = f.class.Rules(class.Config{Final: f.final, MaxAge: f.maxAge})
		o.Exclude = append(append([]string(nil), o.Exclude...), f.class.Excludes()...)
	}
	var res *engine.Result
	switch {
	case srcEP.Remote():
		if _, serr := os.Stat(dst); serr == nil {
			// Scan DST while the connection to SRC is being made.
			ps, done := transport.OpenPending(ctx, src, srcEP.Path, func() (transport.Transport, error) {
				return f.remote.open(ctx, env, srcEP)
			})
			o.Source = ps
			res, err = engine.Run(ctx, o)
			done()
			break
		}
		var t transport.Transport
		if t, err = f.remote.open(ctx, env, srcEP); err == nil {
			var s engine.Source
			if s, err = t.Source(ctx, srcEP.Path); err == nil {
				o.Source = s
				res, err = engine.Run(ctx, o)
			}
			t.Close()
		}
	case dstEP.Remote():
		res, err = f.push(ctx, env, o, srcEP, dstEP)
	default:
		res, err = engine.Run(ctx, o)
	}
	return res, sd, err
}

// log is where a pass's notes go.
func (f *passFlags) log(env Env) io.Writer {
	if f.quiet {
		return io.Discard
	}
	if f.logTo != nil {
		return f.logTo
	}
	return env.Stderr
}

// refuseForRsyncPush names the options a push to stock rsync cannot honour.
func (f *passFlags) refuseForRsyncPush() error {
	var bad []string
	if f.dryRun {
		bad = append(bad, "--dry-run")
	}
	if f.trustDest {
		bad = append(bad, "--trust-dest")
	}
	if f.delta == "always" {
		bad = append(bad, "--delta=always (files cross whole)")
	}
	if f.fsync == "file" {
		bad = append(bad, "--fsync=file (the far side's rsync decides)")
	}
	if f.class != "" {
		bad = append(bad, "a dataset class (its rules run in msync's receiver)")
	}
	if len(bad) == 0 {
		return nil
	}
	return &exitError{code: exitCodeUsage, err: fmt.Errorf("pushing to stock rsync: not supported with %s", strings.Join(bad, ", "))}
}

// push runs the pass on DST's host with this host's SRC as its source.
func (f *passFlags) push(ctx context.Context, env Env, o engine.Options, srcEP, dstEP transport.Endpoint) (*engine.Result, error) {
	fi, err := os.Stat(srcEP.Path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("source %s: not a directory", srcEP.Path)
	}
	t, err := f.remote.open(ctx, env, dstEP)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	local := tree.NewLocal(srcEP.Path)
	defer local.Close()
	sd := f.state
	switch {
	case dstEP.Rsync():
		sd = o.StateDir
	case dstEP.Kind == transport.Daemon && sd != "":
		// The daemon keeps a push's state beneath its own --state-dir and
		// refuses a client's choice.
		fmt.Fprintf(o.Log, "msync: --state %s is not used: the msync daemon keeps the state of pushes under its own --state-dir\n", sd)
		sd = ""
	}
	po := remote.PushOptions{Kind: o.Kind, SrcName: sourceName(srcEP.Path), StateDir: sd, Final: o.Final,
		DryRun: o.DryRun, TrustDest: o.TrustDest, DeleteExtraneous: o.DeleteExtraneous, Exclude: o.Exclude,
		Xattrs: o.Xattrs, Sparse: o.Sparse, Owners: f.owners, OwnersAuto: !f.owners && !f.noOwners, Fsync: o.Fsync, Delta: o.Delta,
		Workers: o.Workers, Itemize: o.OnItem != nil, Progress: true, Class: f.class, MaxAge: f.maxAge}
	return t.Push(ctx, local, dstEP.Path, po, remote.PushHandlers{OnItem: o.OnItem, Log: o.Log, Counters: o.Counters})
}

func summaryError(res *engine.Result, code int) error {
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

func printStats(w io.Writer, res *engine.Result, elapsed time.Duration, dry bool) {
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
