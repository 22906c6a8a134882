package transport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/msync/msync/internal/netx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/transport/module"
	"github.com/msync/msync/transport/remote"
	"github.com/msync/msync/transport/wire"
	"golang.org/x/sys/unix"
)

// Module is a directory a daemon serves under a name (see transport/module).
type Module = module.Module

// ParseModule reads "name=path[,ro]" (see module.Parse).
func ParseModule(s string) (Module, error) { return module.Parse(s) }

// DaemonConfig configures `msync serve --listen`.
type DaemonConfig struct {
	Modules  []Module
	ReadOnly bool   // every module refuses pushes
	Token    string // when set, clients must present it
	Log      io.Writer
	// StateDir is the daemon's own root for the state of the pushes it
	// receives (state.ModuleDir); empty means state.ServeRoot().
	StateDir string
	Limits   Limits
}

// stateDir is where a push into a module keeps its state: beneath the
// daemon's state root, keyed by module, path and source, never a path the
// client names.
func (d *DaemonConfig) stateDir(req *wire.OpenRequest, root string) (string, error) {
	sr := d.StateDir
	if sr == "" {
		var err error
		if sr, err = state.ServeRoot(); err != nil {
			return "", err
		}
	}
	name, sub, _ := strings.Cut(strings.Trim(req.Path, "/"), "/")
	return state.ModuleDir(sr, name, sub, req.Pass.SrcName)
}

// testHookResolved runs once a daemon request's directory is open, before
// it is used; tests hold a request there.
var testHookResolved func()

// resolve checks a daemon request against the modules and opens the
// directory it names: the module is opened once and the client's path
// resolved beneath that descriptor, never through a symlink nor outside it
// (a push creates the directories it names). The client is told
// module-relative paths only.
func (d *DaemonConfig) resolve(req *wire.OpenRequest) (*remote.Target, error) {
	if d.Token != "" {
		// Compare digests: constant time whatever the lengths.
		a, b := sha256.Sum256([]byte(req.Token)), sha256.Sum256([]byte(d.Token))
		if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			return nil, errors.New("authentication failed: wrong or missing token (see --auth-token-file)")
		}
	}
	name, sub, _ := strings.Cut(strings.Trim(req.Path, "/"), "/")
	m, ok := module.Lookup(d.Modules, name)
	if !ok {
		return nil, fmt.Errorf("unknown module %q (this daemon serves: %s)", name, strings.Join(module.Names(d.Modules), ", "))
	}
	if req.Op == "receive" && (m.ReadOnly || d.ReadOnly) {
		return nil, fmt.Errorf("module %q is read-only: it can be a source, not a destination", name)
	}
	sub = strings.Trim(sub, "/")
	if sub != "" {
		if err := manifest.ValidPath(sub); err != nil {
			return nil, err // names the path
		}
	}
	base, err := m.Open()
	if err != nil {
		return nil, err
	}
	defer base.Close()
	t := &remote.Target{Path: base.Join(sub), Key: m.HostPath(sub)}
	// A push creates its destination as a local pass does: private until
	// the pass sets the source's mode.
	create := req.Op == "receive" && req.Pass != nil && !req.Pass.DryRun
	if t.Root, t.Created, err = module.OpenDir(base, sub, create, 0o700); err != nil {
		if req.Op == "receive" && !create && errors.Is(err, unix.ENOENT) {
			t.Created = true // a dry run: it would be created
			return t, nil
		}
		return nil, err
	}
	if testHookResolved != nil {
		testHookResolved()
	}
	return t, nil
}

// ServeStdio answers one client on stdin/stdout, as `ssh host msync serve
// --stdio` runs it: any path the ssh user can reach, "~/" meaning home.
func ServeStdio(ctx context.Context, in io.Reader, out io.Writer, log io.Writer) error {
	if in == nil || out == nil {
		return errors.New("no standard input or output to serve on")
	}
	rw := &stdio{Reader: in, w: out}
	if f, ok := in.(*os.File); ok {
		if p := rw.pollable(f); p != nil {
			rw.Reader = p
		}
	}
	if f, ok := out.(*os.File); ok {
		if p := rw.pollable(f); p != nil {
			rw.w = p
		}
	}
	return remote.Serve(ctx, rw, remote.ServerConfig{Log: log, Resolve: func(req *wire.OpenRequest) (string, error) {
		p := req.Path
		if p == "~" || strings.HasPrefix(p, "~/") {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			p = filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
		if p == "" {
			p = "."
		}
		return filepath.Abs(p)
	}})
}

type stdio struct {
	io.Reader
	w io.Writer
	// What pollable replaced: made blocking again and closed last.
	orig []*os.File
}

// pollable returns a duplicate of f that the Go runtime waits on with
// epoll, when f is a pipe or a socket (what a remote shell connects us
// with), or nil. Read and written as given, the descriptor blocks: a read
// waiting for the next request holds an OS thread, and the scheduler
// hands the rest of the work to another thread each time. rsync's server
// makes its descriptors non-blocking too. The flag belongs to the open
// pipe, which f shares: Close clears it again once the duplicate is closed.
func (s *stdio) pollable(f *os.File) *os.File {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
		return nil
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	s.orig = append(s.orig, f)
	return os.NewFile(uintptr(fd), f.Name())
}

func (s *stdio) Write(p []byte) (int, error) { return s.w.Write(p) }

// Close closes whichever of the streams can be: the client sees the end.
func (s *stdio) Close() error {
	if c, ok := s.w.(io.Closer); ok {
		c.Close()
	}
	if c, ok := s.Reader.(io.Closer); ok {
		c.Close()
	}
	for _, f := range s.orig {
		unix.SetNonblock(int(f.Fd()), false)
		f.Close()
	}
	return nil
}

// ServeListener answers clients on ln until ctx ends, each on its own
// goroutine; a failing or panicking connection never stops the others.
func ServeListener(ctx context.Context, ln net.Listener, d *DaemonConfig) error {
	log := d.Log
	if log == nil {
		log = io.Discard
	}
	return netx.Serve(ctx, ln, d.Limits.config(log), func(ctx context.Context, nc net.Conn) error {
		return remote.Serve(ctx, nc, remote.ServerConfig{Log: log, ResolveAt: d.resolve, StateDir: d.stateDir,
			Busy: func() func() { return netx.Busy(ctx) }})
	})
}
