// Command msync moves a live server's data to a new host in converging
// passes. See "msync --help".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/msync/msync/internal/cli"
	"golang.org/x/term"
)

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, IsTerminal: term.IsTerminal(int(os.Stderr.Fd()))})
	stop()
	os.Exit(code)
}
