package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/msync/msync/transport"
	"github.com/msync/msync/verify"
	"github.com/spf13/cobra"
)

// remoteFlags say how to reach a remote SRC or DST.
type remoteFlags struct {
	rsh, remoteMsync, compress, tokenFile string
	rsync                                 bool
	rsyncPath                             string
}

func addRemoteFlags(c *cobra.Command, rf *remoteFlags) {
	fl := c.Flags()
	fl.StringVarP(&rf.rsh, "rsh", "e", "", `remote shell for host:path endpoints, like rsync's -e (default "ssh", or $MSYNC_RSH)`)
	fl.StringVar(&rf.remoteMsync, "remote-msync", "msync", "command that runs msync on the far side of ssh")
	fl.StringVarP(&rf.compress, "compress", "z", "auto", "compress file data with zstd: on, off or auto (off on loopback; data that does not compress is sent as is)")
	fl.Lookup("compress").NoOptDefVal = "on"
	fl.StringVar(&rf.tokenFile, "auth-token-file", "", "file holding the token of an msync:// daemon module")
	fl.BoolVar(&rf.rsync, "rsync", false, `the host:path side has only stock rsync: run "rsync --server" there through the remote shell (see --rsync-path)`)
	fl.StringVar(&rf.rsyncPath, "rsync-path", "rsync", "command that runs rsync on the far side (with --rsync)")
}

const endpointHelp = `
SRC and DST may each be a local directory, [user@]host:path (msync over ssh: the far
side runs "msync serve --stdio"; see -e and --remote-msync) or msync://host[:port]/module/path
(an "msync serve --listen" daemon). One of them must be local. The pass always runs where
DST is: pulls run here, pushes on the far side, with the state directory on DST's host.

A host that has only stock rsync (2.6.0 to 3.5) can be a source: rsync://host[:port]/module[/path]
(its daemon, no password) or host:path with --rsync (its "rsync --server" over the remote
shell), and so can a destination (a push: the pass's state stays on this host, and a
catch-up deletes there only what msync put there, through rsync's --delete with rules).
msync speaks rsync's protocol 27 to it: mtimes cross in whole seconds, extended attributes
do not cross, changed files cross as rsync deltas.`

func (rf *remoteFlags) open(ctx context.Context, env Env, e transport.Endpoint) (transport.Transport, error) {
	return rf.openWith(ctx, env, e, false)
}

// openWith opens e; forVerify asks a stock rsync for every file's MD4.
func (rf *remoteFlags) openWith(ctx context.Context, env Env, e transport.Endpoint, forVerify bool) (transport.Transport, error) {
	o := transport.DialOptions{Rsh: rf.rsh, RemoteMsync: rf.remoteMsync, Compress: rf.compress, Stderr: env.Stderr,
		RsyncPath: rf.rsyncPath, RsyncChecksum: forVerify}
	if rf.tokenFile != "" {
		b, err := os.ReadFile(rf.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--auth-token-file: %w", err)
		}
		o.Token = strings.TrimSpace(string(b))
	}
	return transport.Open(ctx, e, o)
}

// endpoints parses SRC and DST and refuses two remote ones.
// isRemote reports whether s names a remote endpoint (host:path, msync://).
func isRemote(s string) bool {
	e, err := transport.Parse(s)
	return err == nil && e.Remote()
}

func (rf *remoteFlags) endpoints(src, dst string) (transport.Endpoint, transport.Endpoint, error) {
	s, d, err := endpoints(src, dst)
	if err != nil {
		return s, d, err
	}
	if rf.rsync {
		if s.Kind != transport.SSH && d.Kind != transport.SSH {
			return s, d, &exitError{code: exitCodeUsage, err: fmt.Errorf("--rsync applies to a host:path endpoint, and neither %s nor %s is one", src, dst)}
		}
		s, d = s.AsRsync(), d.AsRsync()
	}
	return s, d, nil
}

func endpoints(src, dst string) (transport.Endpoint, transport.Endpoint, error) {
	s, err := transport.Parse(src)
	if err != nil {
		return s, transport.Endpoint{}, &exitError{code: exitCodeUsage, err: err}
	}
	d, err := transport.Parse(dst)
	if err != nil {
		return s, d, &exitError{code: exitCodeUsage, err: err}
	}
	if s.Remote() && d.Remote() {
		return s, d, &exitError{code: exitCodeUsage, err: fmt.Errorf("%s and %s are both remote: one side must be local", src, dst)}
	}
	return s, d, nil
}

// openSide opens one side of a verification or manifest: local, or the
// far side of a connection.
func (rf *remoteFlags) openSide(ctx context.Context, env Env, e transport.Endpoint) (verify.Side, func(), error) {
	t, err := rf.openWith(ctx, env, e, true)
	if err != nil {
		return nil, nil, err
	}
	s, err := t.Source(ctx, e.Path)
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return s, func() { t.Close() }, nil
}

// sourceName names a local source for the state directory of a push.
func sourceName(src string) string {
	host, _ := os.Hostname()
	abs, err := filepath.Abs(src)
	if err != nil {
		abs = src
	}
	return host + ":" + abs
}
