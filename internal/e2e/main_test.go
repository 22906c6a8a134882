package e2e

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/msync/msync/internal/cli"
	"github.com/msync/msync/internal/testkit"
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
	// The scans serving ends cache stay in this run's own directory.
	code := testkit.RunWithOwnCache(m)
	stopSSHD()
	os.Exit(code)
}
