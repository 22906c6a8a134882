package e2e

import (
	"context"
	"os"
	"testing"

	"github.com/msync/msync/internal/cli"
)

// TestMain lets the test binary double as msync: with MSYNC_E2E_MAIN=1 it
// runs the command line in os.Args and exits, so tests can run (and kill)
// real msync processes without building anything.
func TestMain(m *testing.M) {
	if os.Getenv("MSYNC_E2E_MAIN") == "1" {
		armKillHook()
		os.Exit(cli.Run(context.Background(), os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}))
	}
	code := m.Run()
	stopSSHD()
	os.Exit(code)
}
