package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/msync/msync/internal/cli"
)

// TestMain lets the test binary double as msync: with MSYNC_E2E_MAIN=1 it
// runs the command line in os.Args and exits, so tests can run (and kill)
// real msync processes without building anything.
func TestMain(m *testing.M) {
	if os.Getenv("MSYNC_E2E_MAIN") == "1" {
		armKillHook()
		// As cmd/msync does: SIGINT and SIGTERM end the context.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
		stop()
		os.Exit(code)
	}
	// The scans serving ends cache ($XDG_CACHE_HOME/msync) stay in this
	// run's own directory, not in the user's cache.
	cache, err := os.MkdirTemp("", "msync-e2e-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Setenv("XDG_CACHE_HOME", cache)
	code := m.Run()
	stopSSHD()
	os.RemoveAll(cache)
	os.Exit(code)
}
