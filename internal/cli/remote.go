package cli

import (
	"github.com/msync/msync/migrate"

	"github.com/spf13/cobra"
)

// addRemoteFlags binds the flags that say how to reach a remote SRC or DST.
func addRemoteFlags(c *cobra.Command, rf *migrate.Remote) {
	fl := c.Flags()
	fl.StringVarP(&rf.Rsh, "rsh", "e", "", `remote shell for host:path endpoints, like rsync's -e (default "ssh", or $MSYNC_RSH)`)
	fl.StringVar(&rf.RemoteMsync, "remote-msync", "msync", "command that runs msync on the far side of ssh")
	fl.StringVarP(&rf.Compress, "compress", "z", "auto", "compress file data with zstd: on, off or auto (off on loopback; data that does not compress is sent as is)")
	fl.Lookup("compress").NoOptDefVal = "on"
	fl.StringVar(&rf.TokenFile, "auth-token-file", "", "file holding the token of an msync:// daemon module")
	fl.BoolVar(&rf.Rsync, "rsync", false, `the host:path side has only stock rsync: run "rsync --server" there through the remote shell (see --rsync-path)`)
	fl.StringVar(&rf.RsyncPath, "rsync-path", "rsync", "command that runs rsync on the far side (with --rsync)")
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
