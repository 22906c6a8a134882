// Package cli is msync's command line: it parses flags, builds options,
// calls the migrate library (and the bench package) and prints. Only main exits; everything
// here returns an exit code and writes to the streams it is given.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/migrate"
	"github.com/spf13/cobra"
)

// Exit codes scripts can rely on.
const (
	ExitOK        = migrate.ExitOK
	ExitDiffer    = migrate.ExitDiffer   // verify found differences
	ExitFatal     = migrate.ExitFatal    // usage or fatal error
	ExitPartial   = migrate.ExitPartial  // some files failed, the others were done
	ExitVanished  = migrate.ExitVanished // source files vanished or changed during the pass
	exitCodeUsage = ExitFatal
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// Env is what a command may touch of the outside world.
type Env struct {
	Stdin          io.Reader // serve --stdio speaks the protocol on Stdin and Stdout
	Stdout, Stderr io.Writer
	// IsTerminal reports whether stderr is a terminal (progress default).
	IsTerminal bool
}

// Run executes the msync command line args and returns the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	// Several goroutines (and a remote shell's stderr copier) write to
	// Stderr: make a plain writer safe for that.
	if _, ok := env.Stderr.(*os.File); !ok && env.Stderr != nil {
		env.Stderr = &lockedWriter{w: env.Stderr}
	}
	root := newRootCommand(env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(env.Stderr, "msync: %s\n", manifest.EscapeLines(ee.err.Error()))
		}
		return ee.code
	}
	fmt.Fprintf(env.Stderr, "msync: %s\n", manifest.EscapeLines(err.Error()))
	return ExitFatal
}

func newRootCommand(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "msync",
		Short: "Move a live server's data to a new host in converging passes",
		Long: `msync copies a tree to a new place in passes that converge: a full initial copy
while the old host stays live, cheap incremental catch-up passes, one short final
pass after services stop (which proves the source stayed quiet), then a checksummed
verification before DNS is switched.

  msync initial SRC DST           full copy; records manifests in the state dir
  msync catchup SRC DST           copy only what changed since the last pass
  msync catchup --final SRC DST   last pass during downtime; fails unless SRC was quiet
  msync verify SRC DST            hash both sides and report every difference

Exit codes: 0 ok, 1 verify found differences, 2 usage or fatal error,
23 some files failed (the rest were done), 24 source files vanished or changed
during the pass (with --final: the source was not quiet).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuprofile, memprofile, tracefile string
	var stops []func()
	root.PersistentFlags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentFlags().StringVar(&memprofile, "memprofile", "", "write an allocation profile to this file at the end")
	root.PersistentFlags().MarkHidden("memprofile")
	root.PersistentFlags().StringVar(&tracefile, "trace", "", "write an execution trace to this file")
	root.PersistentFlags().MarkHidden("trace")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if memprofile != "" {
			runtime.MemProfileRate = 64 << 10
		}
		for _, p := range []struct {
			path  string
			start func(io.Writer) error
			stop  func()
		}{{tracefile, trace.Start, trace.Stop}, {cpuprofile, pprof.StartCPUProfile, pprof.StopCPUProfile}} {
			if p.path == "" {
				continue
			}
			stop, err := profileTo(p.path, p.start, p.stop)
			if err != nil {
				return fatal(err)
			}
			stops = append(stops, stop)
		}
		return nil
	}
	root.PersistentPostRun = func(cmd *cobra.Command, args []string) {
		for _, stop := range stops {
			stop()
		}
		if memprofile != "" {
			if f, err := os.Create(memprofile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}
	root.AddCommand(newPassCommand(env, "initial"), newPassCommand(env, "catchup"),
		newVerifyCommand(env), newPlanCommand(env), newStatusCommand(env), newEstimateCommand(env), newReportCommand(env), newManifestCommand(env), newServeCommand(env), newRsyncServerCommand(env), newBenchCommand(env), newVersionCommand(env))
	setVersion(root)
	root.AddCommand(newGenManCommand(env))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitCodeUsage, err: fmt.Errorf("%w (see msync %s --help)", err, c.Name())}
	})
	return root
}

func usageArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &exitError{code: exitCodeUsage, err: fmt.Errorf("%s takes %d arguments, got %d (usage: %s)", cmd.Name(), n, len(args), cmd.UseLine())}
		}
		return nil
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func fatal(err error) error { return &exitError{code: ExitFatal, err: err} }

// profileTo starts a profile (or trace) written to path; the returned
// function ends it and closes the file.
func profileTo(path string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { stop(); f.Close() }, nil
}
