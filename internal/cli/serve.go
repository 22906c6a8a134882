package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/msync/msync/transport"
	"github.com/msync/msync/transport/rsync"
	"github.com/spf13/cobra"
)

func newServeCommand(env Env) *cobra.Command {
	var stdio, readOnly, rsyncProto bool
	var listen, tokenFile, stateDir string
	var modules []string
	var limits serveLimits
	c := &cobra.Command{
		Use:   "serve (--stdio | [--rsync] --listen ADDR --module NAME=PATH[,ro] ...)",
		Short: "Be the far side of a remote pass: over ssh (--stdio) or as a TCP daemon",
		Long: `Serve msync's protocol to a client msync.

--stdio is what "msync ... host:path" runs through ssh on the far side: it serves any
path the ssh user can reach (paths are relative to the login directory; ~/ is home).

--listen ADDR runs a daemon that clients reach as msync://host[:port]/NAME/path. Only the
--module directories are served; a client cannot reach outside them (no "..", no absolute
paths, no symlinked path components). A module marked ",ro", or every module with
--read-only, can be the source of a pass or a verification but never a destination.
With --auth-token-file, clients must present the same token (--auth-token-file on their
side); it is compared in constant time. The daemon does not encrypt: use it on a trusted
network or through a tunnel, and ssh otherwise. Each connection is independent: one that
fails (or panics) never takes the daemon down. Pushes keep their state on this host, beneath
--state-dir (default the daemon user's $XDG_STATE_HOME/msync/serve), one directory per
module, path and source that the daemon names: a client cannot choose it (a client's
--state is refused). Over --stdio the client is the ssh user itself, and its --state is used.

Both daemons serve at most --max-connections clients at once and turn the next ones away
with an error they print ("max connections (N) reached -- try again later"); a client
must send its request within 30 seconds of connecting, and one the daemon waits on
while nothing moves either way for --timeout is dropped (0: never); the daemon's own
work for a client (scanning, hashing, reading its files) is not the client's idleness.
A client that hangs up stops the work it asked for.

With --rsync the daemon speaks stock rsync's daemon protocol (version 27) instead, for
hosts that only have rsync: "rsync -a rsync://host:PORT/NAME/ dst" pulls (deltas
against the client's block sums, in 32 KiB tokens every rsync since 2.6 accepts) and "rsync -a src/
rsync://host:PORT/NAME/" pushes, landing through msync's engine (temp file, rename,
manifests committed). Options msync cannot honour (-c, -n, -R, --inplace, include rules,
...) are refused with an error naming them, never ignored. No authentication: use it on
a trusted network.`,
		Args: usageArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch {
			case stdio && listen != "":
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("--stdio and --listen exclude each other")}
			case stdio:
				if err := transport.ServeStdio(ctx, env.Stdin, env.Stdout, env.Stderr); err != nil {
					return fatal(fmt.Errorf("serve: %w", err))
				}
				return nil
			case listen == "":
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("give --stdio or --listen ADDR (see msync serve --help)")}
			}
			if rsyncProto {
				if tokenFile != "" {
					return &exitError{code: exitCodeUsage, err: fmt.Errorf("--auth-token-file: an rsync daemon (--rsync) has no authentication")}
				}
				return serveRsync(ctx, env, listen, modules, readOnly, stateDir, limits)
			}
			mods, err := parseModules(modules)
			if err != nil {
				return err
			}
			d := &transport.DaemonConfig{ReadOnly: readOnly, Log: env.Stderr, Modules: mods, StateDir: stateDir, Limits: limits.msync()}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fatal(fmt.Errorf("--auth-token-file: %w", err))
				}
				d.Token = strings.TrimSpace(string(b))
				if d.Token == "" {
					return fatal(fmt.Errorf("--auth-token-file %s is empty", tokenFile))
				}
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fatal(fmt.Errorf("listen: %w", err))
			}
			fmt.Fprintf(env.Stderr, "msync serve: listening on %s\n", ln.Addr())
			if err := transport.ServeListener(ctx, ln, d); err != nil {
				return fatal(fmt.Errorf("serve: %w", err))
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.BoolVar(&stdio, "stdio", false, "serve one client on stdin/stdout (run by ssh)")
	fl.StringVar(&listen, "listen", "", "serve clients on this TCP address (e.g. 127.0.0.1:7873)")
	fl.StringArrayVar(&modules, "module", nil, "serve directory PATH as module NAME (NAME=PATH, or NAME=PATH,ro for read-only; repeatable)")
	fl.BoolVar(&readOnly, "read-only", false, "refuse every push: modules can only be read")
	fl.BoolVar(&rsyncProto, "rsync", false, "speak stock rsync's daemon protocol, for rsync clients (with --listen)")
	fl.StringVar(&tokenFile, "auth-token-file", "", "require clients to present the token in this file")
	fl.StringVar(&stateDir, "state-dir", "", "keep the state of pushes beneath this directory (default $XDG_STATE_HOME/msync/serve)")
	limits.flags(fl)
	return c
}

// serveRsync runs the rsync-protocol daemon.
func serveRsync(ctx context.Context, env Env, listen string, modules []string, readOnly bool, stateDir string, limits serveLimits) error {
	mods, err := parseModules(modules)
	if err != nil {
		return err
	}
	srv := &rsync.Server{Log: env.Stderr, StateDir: stateDir, Limits: limits.rsync()}
	for _, m := range mods {
		srv.Modules = append(srv.Modules, rsync.Module{Name: m.Name, Path: m.Path, ReadOnly: m.ReadOnly || readOnly})
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fatal(fmt.Errorf("listen: %w", err))
	}
	fmt.Fprintf(env.Stderr, "msync serve --rsync: listening on %s\n", ln.Addr())
	if err := srv.Serve(ctx, ln); err != nil {
		return fatal(fmt.Errorf("serve: %w", err))
	}
	return nil
}

// newRsyncServerCommand is what a stock rsync client runs on the far side
// of its remote shell when told --rsync-path="msync rsync-server": rsync's
// server arguments follow, unparsed.
func newRsyncServerCommand(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "rsync-server --server [--sender] FLAGS . PATH",
		Short: "Be stock rsync's far side over a remote shell (rsync -e ssh --rsync-path='msync rsync-server')",
		Long: `Run by a stock rsync client through its remote shell, in place of "rsync --server":

  rsync -aH --rsync-path="msync rsync-server" src/ host:/srv/dst/     (push: msync's engine lands it)
  rsync -aH --rsync-path="msync rsync-server" host:/srv/src/ dst/     (pull: msync sends)

It speaks rsync's protocol 27 on stdin and stdout and serves any path the shell's user can
reach. Options msync cannot honour are refused by name (the client exits with code 4).`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || args[0] != "--server" {
				if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
					return cmd.Help()
				}
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("rsync-server is run by an rsync client (its arguments start with --server)")}
			}
			if err := rsync.ServeShell(cmd.Context(), env.Stdin, env.Stdout, args, env.Stderr); err != nil {
				return fatal(fmt.Errorf("rsync-server: %w", err))
			}
			return nil
		},
	}
}

// parseModules reads --module NAME=PATH[,ro] flags; each PATH must be a
// directory.
func parseModules(specs []string) ([]transport.Module, error) {
	if len(specs) == 0 {
		return nil, &exitError{code: exitCodeUsage, err: fmt.Errorf("--listen needs at least one --module NAME=PATH")}
	}
	var mods []transport.Module
	for _, s := range specs {
		m, err := transport.ParseModule(s)
		if err != nil {
			return nil, &exitError{code: exitCodeUsage, err: err}
		}
		fi, err := os.Stat(m.Path)
		if err != nil || !fi.IsDir() {
			return nil, &exitError{code: exitCodeUsage, err: fmt.Errorf("--module %s: %s is not a directory", m.Name, m.Path)}
		}
		mods = append(mods, m)
	}
	return mods, nil
}
