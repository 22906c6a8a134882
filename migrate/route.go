package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/transport"
	"github.com/msync/msync/verify"
)

// UsageError is a refusal of what was asked (endpoints, options), as
// opposed to a failure while doing it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usage(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }

// Remote says how to reach a remote end.
type Remote struct {
	Rsh         string // remote shell, like rsync's -e
	RemoteMsync string // command that runs msync on the far side of ssh
	Compress    string // on, off or auto
	TokenFile   string // file holding the token of an msync:// daemon module
	// Rsync: the host:path end has only stock rsync, run through the
	// remote shell as RsyncPath.
	Rsync     bool
	RsyncPath string
}

// Way is how a pass reaches its ends. A pass always runs where DST is.
type Way int

// The ways of a pass.
const (
	Local Way = iota // both ends on this host
	Pull             // SRC remote: the pass runs here
	Push             // DST remote: the pass runs on DST's host (or here, for stock rsync)
)

func (w Way) String() string {
	switch w {
	case Pull:
		return "pull"
	case Push:
		return "push"
	}
	return "local"
}

// Route is a pair of parsed ends and the way between them.
type Route struct {
	Way      Way
	Src, Dst transport.Endpoint
}

// String reads like "pull from rsync-daemon".
func (r Route) String() string {
	switch r.Way {
	case Pull:
		return "pull from " + kindName(r.Src.Kind)
	case Push:
		return "push to " + kindName(r.Dst.Kind)
	}
	return "local"
}

func kindName(k transport.Kind) string {
	switch k {
	case transport.SSH:
		return "ssh"
	case transport.Daemon:
		return "msync-daemon"
	case transport.RsyncDaemon:
		return "rsync-daemon"
	case transport.RsyncShell:
		return "rsync-shell"
	}
	return "local"
}

// Resolve parses src and dst and finds the way between them; it refuses
// two remote ends, and --rsync without a host:path end.
func Resolve(src, dst string, rsync bool) (Route, error) {
	s, err := transport.Parse(src)
	if err != nil {
		return Route{}, &UsageError{Err: err}
	}
	d, err := transport.Parse(dst)
	if err != nil {
		return Route{}, &UsageError{Err: err}
	}
	if s.Remote() && d.Remote() {
		return Route{}, usage("%s and %s are both remote: one side must be local", src, dst)
	}
	if rsync {
		if s.Kind != transport.SSH && d.Kind != transport.SSH {
			return Route{}, usage("--rsync applies to a host:path endpoint, and neither %s nor %s is one", src, dst)
		}
		s, d = s.AsRsync(), d.AsRsync()
	}
	r := Route{Src: s, Dst: d}
	switch {
	case s.Remote():
		r.Way = Pull
	case d.Remote():
		r.Way = Push
	}
	return r, nil
}

// IsRemote reports whether s names a remote endpoint (host:path, msync://,
// rsync://).
func IsRemote(s string) bool {
	e, err := transport.Parse(s)
	return err == nil && e.Remote()
}

// StateDir is flag when set, else the pair's default state directory.
func StateDir(flag, src, dst string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if IsRemote(src) {
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

// StateDir is where a pass on r keeps its state, given --state as flag:
// "" when it is on DST's host (a push to msync, which chooses it there).
// A destination that keeps no state (stock rsync) has it kept here.
func (r Route) StateDir(flag string) (string, error) {
	switch {
	case !CapabilitiesOf(r.Dst.Kind).KeepsState:
		if flag != "" {
			return flag, nil
		}
		as, err := filepath.Abs(r.Src.Raw)
		if err != nil {
			return "", err
		}
		return state.DefaultDir(as, r.Dst.Raw)
	case r.Dst.Remote():
		return flag, nil
	}
	return StateDir(flag, r.Src.Raw, r.Dst.Raw)
}

// VerifyState is where a verification of src and dst is recorded: flag
// (--state), or the pair's default state directory when a pass made it;
// "" for none (DST remote, or no pass yet).
func VerifyState(flag, src, dst string) string {
	if flag != "" {
		return flag
	}
	if IsRemote(dst) {
		return ""
	}
	sd, err := StateDir("", src, dst)
	if err != nil {
		return ""
	}
	if _, err := os.Stat(sd); err != nil {
		return ""
	}
	return sd
}

// open opens e; forVerify asks a stock rsync for every file's MD4.
func (rm Remote) open(ctx context.Context, stderr io.Writer, e transport.Endpoint, forVerify bool) (transport.Transport, error) {
	return rm.openSpilling(ctx, stderr, e, forVerify, "")
}

// openSpilling opens e as open does; a stock rsync source keeps the answers
// that come before the pass reads them in spillDir (a pass's state
// directory: on disk, where $TMPDIR may be RAM).
func (rm Remote) openSpilling(ctx context.Context, stderr io.Writer, e transport.Endpoint, forVerify bool, spillDir string) (transport.Transport, error) {
	o := transport.DialOptions{Rsh: rm.Rsh, RemoteMsync: rm.RemoteMsync, Compress: rm.Compress, Stderr: stderr,
		RsyncPath: rm.RsyncPath, RsyncChecksum: forVerify, SpillDir: spillDir}
	if rm.TokenFile != "" {
		b, err := os.ReadFile(rm.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("--auth-token-file: %w", err)
		}
		o.Token = strings.TrimSpace(string(b))
	}
	return transport.Open(ctx, e, o)
}

// OpenSide opens one side of a verification or manifest: local, or the far
// side of a connection (stock rsync sends every file's MD4). close ends it.
func (rm Remote) OpenSide(ctx context.Context, stderr io.Writer, e transport.Endpoint) (side verify.Side, close func(), err error) {
	t, err := rm.open(ctx, stderr, e, true)
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

// IsUsage reports whether err is a refusal of what was asked.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}
