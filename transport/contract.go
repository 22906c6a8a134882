package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/remote"
	"github.com/msync/msync/transport/wire"
)

// Transport is the contract every way of reaching a tree fulfils: this
// host (Local), msync over ssh and the msync daemon over TCP (Conn). One
// conformance suite (internal/e2e, TestTransportConformance) runs each of
// them, pulling and pushing, and judges the result with rsync.
//
// Source opens the tree at path for a pass that runs on this host (a pull)
// or for one side of a verification: the returned Source scans the tree
// where it lives, hashing when asked, and sends file contents as delta
// operations (whole, appended tail, or against the receiver's signature).
// Entries come in manifest order and form a tree rooted at "".
//
// Push runs a pass on the transport's host into path, with local, a tree
// on this host, as its source; the pass's items, log and progress come
// back through h, and its result when it ends. The pass keeps its state
// on the transport's host (o.StateDir, or the default there).
//
// Close ends the transport; Sources it opened must not be used after.
type Transport interface {
	Source(ctx context.Context, path string) (engine.Source, error)
	Push(ctx context.Context, local *tree.Local, path string, o wire.PassOptions, h remote.PushHandlers) (*engine.Result, error)
	Close() error
}

// Open returns the transport that reaches e: Local for a local path,
// otherwise a connection made with o.
func Open(ctx context.Context, e Endpoint, o DialOptions) (Transport, error) {
	if e.Kind == Local {
		return &LocalTransport{}, nil
	}
	return Dial(ctx, e, o)
}

// LocalTransport reaches trees on this host.
type LocalTransport struct {
	mu     sync.Mutex
	opened []*tree.Local
}

// Source opens the directory at path.
func (l *LocalTransport) Source(ctx context.Context, path string) (engine.Source, error) {
	t := tree.NewLocal(path)
	l.mu.Lock()
	l.opened = append(l.opened, t)
	l.mu.Unlock()
	return t, nil
}

// Push runs the pass here.
func (l *LocalTransport) Push(ctx context.Context, local *tree.Local, path string, w wire.PassOptions, h remote.PushHandlers) (*engine.Result, error) {
	o, err := remote.PassOptions(&w)
	if err != nil {
		return nil, err
	}
	o.Src, o.Dst, o.StateDir = local.Root, path, w.StateDir
	if o.StateDir == "" {
		return nil, errors.New("a local pass needs a state directory")
	}
	o.OnItem, o.Log, o.Counters = h.OnItem, h.Log, h.Counters
	return engine.Run(ctx, o)
}

// Close releases what Source opened.
func (l *LocalTransport) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.opened {
		t.Close()
	}
	l.opened = nil
	return nil
}

// Source opens path on the far side.
func (c *Conn) Source(ctx context.Context, path string) (engine.Source, error) {
	s, err := c.OpenSource(ctx, path, c.Token)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Push runs the pass on the far side.
func (c *Conn) Push(ctx context.Context, local *tree.Local, path string, o wire.PassOptions, h remote.PushHandlers) (*engine.Result, error) {
	return c.Conn.Push(ctx, local, path, c.Token, o, h)
}

var (
	_ Transport = (*LocalTransport)(nil)
	_ Transport = (*Conn)(nil)
)

// String names the transport for messages.
func (c *Conn) String() string { return fmt.Sprint(c.Endpoint) }
