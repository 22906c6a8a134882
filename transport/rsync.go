package transport

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/msync/msync/record"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/remote"
	"github.com/msync/msync/transport/rsync"
)

// RsyncTransport reaches a tree served by stock rsync, its daemon or
// `rsync --server` over a remote shell. Each Source is one rsync run.
type RsyncTransport struct {
	Endpoint Endpoint
	Options  DialOptions

	mu      sync.Mutex
	clients []*rsync.Client
}

// Source connects and asks the far side's rsync to send path.
func (t *RsyncTransport) Source(ctx context.Context, path string) (engine.Source, error) {
	e := t.Endpoint
	re := rsync.Endpoint{Daemon: e.Kind == RsyncDaemon, User: e.User, Host: e.Host, Port: e.Port,
		Path: path, Rsh: t.Options.Rsh, RsyncPath: t.Options.RsyncPath, Name: e.Raw, Checksum: t.Options.RsyncChecksum}
	if re.Daemon {
		re.Module, re.Path, _ = strings.Cut(path, "/")
	}
	c, err := rsync.Dial(ctx, re, rsync.Options{Log: t.Options.Stderr, SpillDir: t.Options.SpillDir})
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.clients = append(t.clients, c)
	t.mu.Unlock()
	return c, nil
}

// Push runs a pass from local into stock rsync at path. The pass's state
// stays on this host (o.StateDir): stock rsync keeps none.
func (t *RsyncTransport) Push(ctx context.Context, local *tree.Local, path string, o remote.PushOptions, h remote.PushHandlers) (*record.Result, error) {
	if o.StateDir == "" {
		return nil, fmt.Errorf("%s: a push to stock rsync needs a local state directory", t.Endpoint.Raw)
	}
	e := t.Endpoint
	re := rsync.Endpoint{Daemon: e.Kind == RsyncDaemon, User: e.User, Host: e.Host, Port: e.Port,
		Path: path, Rsh: t.Options.Rsh, RsyncPath: t.Options.RsyncPath, Name: e.Raw}
	if re.Daemon {
		re.Module, re.Path, _ = strings.Cut(path, "/")
	}
	return rsync.Push(ctx, rsync.PushOptions{Endpoint: re, Src: local.Root, StateDir: o.StateDir, Kind: o.Kind,
		Final: o.Final, DeleteExtraneous: o.DeleteExtraneous, Exclude: o.Exclude, Sparse: o.Sparse,
		OnItem: h.OnItem, Counters: h.Counters, Log: h.Log})
}

// Close ends every rsync run the transport started.
func (t *RsyncTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first error
	for _, c := range t.clients {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	t.clients = nil
	return first
}

var _ Transport = (*RsyncTransport)(nil)
