package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/msync/msync/bench"
	"github.com/msync/msync/internal/sshd"
	"github.com/spf13/cobra"
)

func newBenchCommand(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Generate realistic migration trees and mutate them",
	}
	var seed uint64
	var scale float64
	gen := &cobra.Command{
		Use:   "gen DIR",
		Short: "Build a tree shaped like an old community server (homes, darcs, mailman, exim)",
		Args:  usageArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := time.Now()
			st, err := bench.Gen(args[0], seed, scale)
			if err != nil {
				return fatal(fmt.Errorf("bench gen: %w", err))
			}
			fmt.Fprintf(env.Stdout, "generated %s: %d files, %d dirs, %d symlinks, %s in %s\n", args[0], st.Files, st.Dirs, st.Links, humanBytes(st.Bytes), time.Since(t).Round(time.Millisecond))
			return nil
		},
	}
	gen.Flags().Uint64Var(&seed, "seed", 1, "random seed")
	gen.Flags().Float64Var(&scale, "scale", 0.1, "size: 1.0 is about 150k files and 1.5 GB")
	var round int
	var mseed uint64
	mutate := &cobra.Command{
		Use:   "mutate DIR",
		Short: "Apply one realistic day of changes to a generated tree",
		Args:  usageArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := bench.Mutate(args[0], mseed, round)
			if err != nil {
				return fatal(fmt.Errorf("bench mutate: %w", err))
			}
			fmt.Fprintf(env.Stdout, "mutated %s (round %d): %d files written, %s\n", args[0], round, st.Files, humanBytes(st.Bytes))
			return nil
		},
	}
	mutate.Flags().Uint64Var(&mseed, "seed", 1, "random seed")
	mutate.Flags().IntVar(&round, "round", 1, "mutation round (each round changes different things)")
	c.AddCommand(gen, mutate, newBenchRunCommand(env), newEstimateCheckCommand(env), newFloorCommand(env))
	return c
}

func newBenchRunCommand(env Env) *cobra.Command {
	var cfg bench.Config
	var out string
	var asJSON, sshLoopback bool
	c := &cobra.Command{
		Use:   "run [flags]",
		Short: "Compare msync with rsync on a generated tree, side by side, as ratios",
		Long: `Generate a tree (once per seed and scale) and run, on identical fresh copies and
alternating which tool goes first, each of them --runs times (the tree is kept in --dir
between runs; its mutate rounds go on from run to run, counted in src.rounds, and it is
generated again after 200):
  initial copy        msync initial      vs rsync -aH          (cp -a for reference)
  no-change pass      msync catchup      vs rsync -aH --delete (rsync -aHX for reference)
  catch-up            after one bench mutate round, same commands
  remote bytes        msync --delta=always wire bytes vs rsync --no-whole-file "Total bytes sent"
  verify              msync verify --no-xattrs vs rsync -aHn -c --delete (neither compares
                      xattrs; for reference, msync verify vs rsync -aHXn -c --delete)
Beside each local time row, bench floor times only the system calls no tool can skip on
the same trees (see msync bench floor --help; --copy-to for the initial copy, --update-to
on the cp -a copy for the catch-up): floor/rsync is the smallest ratio this machine allows.
Every copy is kept until the run ends (a pass timed right after gigabytes were deleted
pays for ext4's check of recently freed inodes), so --dir needs room for all of them:
about 4 copies per run, 2 more per run for --rsync-daemon and for ssh. When the run
itself deletes a large tree first (a killed run's copies, a tree of another scale), it
waits a minute before timing anything; start it a minute or more after deleting large
trees on that file system yourself.
The copies fill the page cache: without --drop-caches, a command that writes must first
evict earlier copies, and whichever tool goes first pays for it. With --drop-caches (root)
each timed command starts from dropped caches with only its own trees read back: those
it reads files of (the source, the state directory) in full, those it only looks at walked.
With --rsync-daemon, also pulls from that rsync run as a daemon on 127.0.0.1 (initial
and catch-up, msync rsync:// vs rsync rsync://); with --ssh or --ssh-loopback, over ssh.
Prints a Markdown table of medians (min-max), ratios msync/rsync and peak RSS.`,
		Args: usageArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Msync == "" {
				exe, err := os.Executable()
				if err != nil {
					return fatal(err)
				}
				cfg.Msync = exe
			}
			if cfg.Dir == "" {
				cfg.Dir = filepath.Join(os.TempDir(), "msync-bench")
			}
			cfg.Log = env.Stderr
			switch {
			case sshLoopback && cfg.SSH != "":
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("--ssh and --ssh-loopback exclude each other")}
			case sshLoopback:
				srv, err := sshd.Start()
				if err != nil {
					return fatal(fmt.Errorf("--ssh-loopback: %w", err))
				}
				defer srv.Close()
				cfg.SSH = srv.Command()
			}
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return fatal(fmt.Errorf("bench run: %w", err))
			}
			var buf bytes.Buffer
			if asJSON {
				enc := json.NewEncoder(&buf)
				enc.SetIndent("", "  ")
				enc.Encode(res)
			} else {
				res.Command = strings.Join(append([]string{"msync bench run"}, os.Args[3:]...), " ")
				res.Markdown(&buf)
			}
			env.Stdout.Write(buf.Bytes())
			if out != "" {
				if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
					return fatal(err)
				}
			}
			return nil
		},
	}
	c.Flags().Float64Var(&cfg.Scale, "scale", 0.3, "tree size (1.0: about 150k files, 1.5 GB)")
	c.Flags().IntVar(&cfg.Runs, "runs", 4, "runs of each measurement (medians are reported; even, so each tool goes first as often)")
	c.Flags().Uint64Var(&cfg.Seed, "seed", 1, "random seed of the tree and its mutations")
	c.Flags().StringVar(&cfg.Dir, "dir", "", "work directory (default: $TMPDIR/msync-bench); needs several times the tree's size")
	c.Flags().StringVarP(&out, "out", "o", "", "also write the table (or JSON) to this file")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of Markdown")
	c.Flags().IntVar(&cfg.MemFiles, "mem-files", 0, "also measure peak RSS per file on a tree of this many one-byte files (e.g. 1000000)")
	c.Flags().StringVar(&cfg.SSH, "ssh", "", "also pull over ssh to 127.0.0.1 with this ssh command (as for -e), msync vs rsync")
	c.Flags().BoolVar(&cfg.RsyncDaemon, "rsync-daemon", false, "also pull from the rsync binary run as a daemon on 127.0.0.1, msync rsync:// vs rsync rsync://")
	c.Flags().BoolVar(&cfg.DropCaches, "drop-caches", false, "before each timed command, drop the kernel's caches and read back only the trees it works on (needs root; affects the whole machine)")
	c.Flags().BoolVar(&sshLoopback, "ssh-loopback", false, "start a private OpenSSH server on 127.0.0.1 (keys generated) for the ssh rows")
	c.Flags().StringVar(&cfg.Msync, "msync", "", "msync binary to measure (default: this one)")
	c.Flags().StringVar(&cfg.Rsync, "rsync", "", "rsync binary to compare with (default: rsync on PATH)")
	return c
}

func newEstimateCheckCommand(env Env) *cobra.Command {
	cfg := bench.CheckConfig{History: []int{1, 3, 2, 4}, Checks: []int{3, 1, 5, 2}}
	var asJSON bool
	var out string
	var scenarios []string
	c := &cobra.Command{
		Use:   "estimate-check [flags]",
		Short: "Replay catch-ups at varied gaps and compare msync estimate's predictions with the real passes",
		Long: `Generate a tree, copy it, then run catch-up passes after varied gaps, where one gap
unit (--unit, 10m) stands for two bench mutate rounds of a live server's changes. After the
learning passes (gaps 1, 3, 2, 4 units) each further pass (3, 1, 5, then 2 units as the
final pass) is first predicted from the history so far, then run, and the two are printed
side by side. The target is within ±25%. Timing is real; only the gaps are simulated.

--scenarios bursty,steady,shrinking (or all) instead replays shapes of change before the
final pass (quiet catch-ups then a burst; a steady stream; a draining backlog) and compares
the final pass, and the final pass then msync verify, with msync estimate's predictions from
history alone and with --probe. The target with --probe: within ±20% and inside its range.
Both verifications start with the trees in the page cache.

Give --dir on a file system that has not just had large trees deleted (a fresh one is
best): ext4 slows the creation of every file after a large deletion, and the initial copy
the estimate learns from then costs up to ten times what it costs on a new disk.`,
		Args: usageArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Dir == "" {
				cfg.Dir = filepath.Join(os.TempDir(), "msync-estimate-check")
			}
			if !asJSON {
				cfg.Log = env.Stderr
			}
			var b strings.Builder
			var res interface{ Markdown(io.Writer) }
			var err error
			if len(scenarios) > 0 {
				if len(scenarios) == 1 && scenarios[0] == "all" {
					scenarios = nil
				}
				res, err = bench.EstimateScenarios(cmd.Context(), bench.ScenarioConfig{Dir: cfg.Dir, Scale: cfg.Scale, Seed: cfg.Seed, Unit: cfg.Unit, Names: scenarios, Log: cfg.Log})
			} else {
				res, err = bench.EstimateCheck(cmd.Context(), cfg)
			}
			if err != nil {
				return fatal(fmt.Errorf("estimate-check: %w", err))
			}
			if asJSON {
				enc := json.NewEncoder(&b)
				enc.SetIndent("", "  ")
				enc.Encode(res)
			} else {
				res.Markdown(&b)
			}
			io.WriteString(env.Stdout, b.String())
			if out != "" {
				if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
					return fatal(err)
				}
			}
			return nil
		},
	}
	c.Flags().Float64Var(&cfg.Scale, "scale", 0.1, "tree size (1.0: about 150k files, 1.5 GB)")
	c.Flags().Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	c.Flags().StringVar(&cfg.Dir, "dir", "", "work directory, emptied first (default: $TMPDIR/msync-estimate-check)")
	c.Flags().DurationVar(&cfg.Unit, "unit", 10*time.Minute, "the stretch of time two mutate rounds stand for")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVarP(&out, "out", "o", "", "also write the table to this file")
	c.Flags().StringSliceVar(&scenarios, "scenarios", nil, "replay these shapes of change before the final pass: bursty, steady, shrinking, or all")
	return c
}

// floorFlags are bench floor's flags.
type floorFlags struct {
	read, hash, syncfs, temp, record bool
	workers                          int
	copyTo, updateTo                 string
	manifests                        []string
}

func newFloorCommand(env Env) *cobra.Command {
	ff := &floorFlags{}
	c := &cobra.Command{
		Use:   "floor [--read [--hash]] [--manifest FILE]... DIR... | floor --copy-to NEW [--sync] [--temp] [--record] DIR | floor --update-to OLD [--sync] [--manifest FILE]... DIR",
		Short: "Time only the system calls a pass over DIR cannot avoid: this machine's floor",
		Long:  floorHelp,
		Args:  ff.check,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := ff.run(cmd.Context(), args)
			if err != nil {
				return fatal(fmt.Errorf("bench floor: %w", err))
			}
			fmt.Fprintln(env.Stdout, out)
			return nil
		},
	}
	c.Flags().BoolVar(&ff.read, "read", false, "also read every regular file to the end")
	c.Flags().BoolVar(&ff.hash, "hash", false, "with --read: also hash what is read (xxhash64)")
	c.Flags().StringVar(&ff.copyTo, "copy-to", "", "copy DIR into this new directory instead (the floor of an initial copy)")
	c.Flags().StringVar(&ff.updateTo, "update-to", "", "bring this existing copy of DIR up to date instead (the floor of a catch-up)")
	c.Flags().BoolVar(&ff.syncfs, "sync", false, "with --copy-to or --update-to: then syncfs that file system, timed apart")
	c.Flags().BoolVar(&ff.temp, "temp", false, "with --copy-to: write each file under a temp name and rename it into place")
	c.Flags().BoolVar(&ff.record, "record", false, "with --copy-to: also make msync's record of each file: hash it (xxhash64) and fstat the source once read and the copy")
	c.Flags().StringArrayVar(&ff.manifests, "manifest", nil, "also decode this msync manifest beside the floor (repeatable)")
	c.Flags().IntVar(&ff.workers, "workers", 4, "goroutines")
	return c
}

const floorHelp = `Walk each DIR on --workers goroutines making only the system calls that any tool
comparing trees must make: open and getdents for every directory, lstat for every entry
(the floor of a no-change pass over those trees). With --read, also open, read to the end
and close every regular file (those under 64 KiB as linked io_uring requests sent a
directory at a time, as msync's hasher reads them, where the kernel allows it); with
--hash too, hash what is read with xxhash64, msync's digest (the floor of a checksum
comparison). Nothing is written.

With --copy-to NEW, copy DIR into NEW (which must not exist) the way rsync -a would,
making only the calls that needs: for every file open, read, create under its final name,
write, set owner (as root), mode and mtime, and close; for every symlink readlink and
symlink; directories made, and their metadata set at the end. Files of 1 MiB or more
are written as msync writes them, with O_DIRECT (around the page cache) where the file
system allows it. No temp names, nothing hashed or recorded, hard links copied as
separate files, special files skipped: the floor of an initial copy. --sync adds a
syncfs of NEW's file system, timed apart. --temp writes every file under a temp name in
its directory and renames it into place, as rsync does: the floor of a copy that never
shows a half-written file, as msync promises. --record adds what msync records of each
file it copies: a content hash (xxhash64) for the manifests, an fstat of the source once
read (msync's check that it did not change while it was read) and one of the copy (its
entry in the destination's manifest).

With --update-to OLD, bring the existing copy OLD up to date with DIR the way
rsync -a --delete does between local trees: both trees listed and lstat'ed, every file
whose size or mtime differs written under a temp name and renamed over the old copy (as
rsync does: the old copy stays whole until the new one is; files of 1 MiB or more with
O_DIRECT as above), new entries made, metadata set
where only it differs, what DIR lacks removed. No hashing: the floor of a catch-up pass.
--sync works here too.

--manifest FILE (repeatable; not with --copy-to) also decodes that msync manifest to the
end, on its own goroutine, while the floor runs: a pass that carries content hashes over
from its last manifests (msync's state directory holds src.manifest and dst.manifest) must
read them, so the walk or update with them is the floor of such a pass.

bench run measures these beside its rows: a ratio below floor/rsync cannot be reached on
this machine, in the same conditions, by a tool that makes those calls. The cost of
writing moves with the state of the machine's memory from one run to the next, so for the
initial copy and the catch-up the floor is a guide, not a bound.`

// check refuses flags that do not go together.
func (ff *floorFlags) check(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return &exitError{code: exitCodeUsage, err: fmt.Errorf("floor takes at least one DIR (usage: %s)", cmd.UseLine())}
	case ff.copyTo != "" && ff.updateTo != "":
		return &exitError{code: exitCodeUsage, err: errors.New("floor takes --copy-to or --update-to, not both")}
	case (ff.copyTo != "" || ff.updateTo != "") && (len(args) != 1 || ff.read):
		return &exitError{code: exitCodeUsage, err: errors.New("floor --copy-to and --update-to take one DIR and no --read")}
	case ff.hash && !ff.read:
		return &exitError{code: exitCodeUsage, err: errors.New("floor --hash goes with --read")}
	case ff.copyTo == "" && ff.updateTo == "" && ff.syncfs:
		return &exitError{code: exitCodeUsage, err: errors.New("floor --sync goes with --copy-to or --update-to")}
	case ff.copyTo == "" && (ff.temp || ff.record):
		return &exitError{code: exitCodeUsage, err: errors.New("floor --temp and --record go with --copy-to")}
	case ff.copyTo != "" && len(ff.manifests) > 0:
		return &exitError{code: exitCodeUsage, err: errors.New("floor --manifest does not go with --copy-to (an initial copy has no last manifest)")}
	}
	return nil
}

// run times the floor over dirs, with the manifests decoded beside it from
// its start, and returns its line of output.
func (ff *floorFlags) run(ctx context.Context, dirs []string) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type decoded struct {
		n   int64
		err error
	}
	dec := make(chan decoded, 1)
	go func() {
		n, err := bench.DecodeManifests(ctx, ff.manifests...)
		if err != nil {
			cancel() // a bad manifest stops the floor at once
		}
		dec <- decoded{n, err}
	}()
	out, err := ff.floor(ctx, dirs)
	if err != nil {
		cancel()
	}
	// The first failure is reported, not the cancellation it caused.
	d := <-dec
	if d.err != nil && !errors.Is(d.err, context.Canceled) {
		return "", d.err
	}
	if err != nil {
		return "", err
	}
	if len(ff.manifests) > 0 {
		out += fmt.Sprintf(", and %d manifest entries decoded", d.n)
	}
	return out, nil
}

// floor runs the floor the flags ask for.
func (ff *floorFlags) floor(ctx context.Context, dirs []string) (string, error) {
	switch {
	case ff.updateTo != "":
		st, err := bench.UpdateFloor(ctx, ff.workers, dirs[0], ff.updateTo, ff.syncfs)
		return st.String(), err
	case ff.copyTo != "":
		st, err := bench.CopyFloor(ctx, ff.workers, dirs[0], ff.copyTo, bench.CopyOptions{Sync: ff.syncfs, Temp: ff.temp, Record: ff.record})
		return st.String(), err
	}
	t := time.Now()
	st, err := bench.Floor(ctx, ff.workers, ff.read, ff.hash, dirs...)
	return fmt.Sprintf("%s in %.3f s", st, time.Since(t).Seconds()), err
}
