package transport

import (
	"context"
	"errors"
	"sync"

	"github.com/msync/msync/record"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/remote"
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
	Push(ctx context.Context, local *tree.Local, path string, o remote.PushOptions, h remote.PushHandlers) (*record.Result, error)
	Close() error
}

// Open returns the transport that reaches e: Local for a local path,
// otherwise a connection made with o.
func Open(ctx context.Context, e Endpoint, o DialOptions) (Transport, error) {
	if e.Kind == Local {
		return &LocalTransport{}, nil
	}
	if e.Rsync() {
		return &RsyncTransport{Endpoint: e, Options: o}, nil
	}
	c, err := Dial(ctx, e, o)
	if err != nil {
		return nil, err // not a nil *Conn in a non-nil interface
	}
	return c, nil
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
func (l *LocalTransport) Push(ctx context.Context, local *tree.Local, path string, po remote.PushOptions, h remote.PushHandlers) (*record.Result, error) {
	o := remote.EngineOptions(&po)
	o.Src, o.Dst, o.StateDir = local.Root, path, po.StateDir
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
func (c *Conn) Push(ctx context.Context, local *tree.Local, path string, o remote.PushOptions, h remote.PushHandlers) (*record.Result, error) {
	return c.Conn.Push(ctx, local, path, c.Token, o, h)
}

var (
	_ Transport = (*LocalTransport)(nil)
	_ Transport = (*Conn)(nil)
	// A PendingSource passes on every capability a source may have.
	_ send.BasisSigner  = (*PendingSource)(nil)
	_ send.AheadFetcher = (*PendingSource)(nil)
	_ wireCounter       = (*PendingSource)(nil)
)

// PendingSource is a Source still being opened (a remote shell takes a
// moment to connect): String and Join answer at once, the other methods
// wait for it. A pass given one scans its destination meanwhile.
type PendingSource struct {
	name  string
	ready chan struct{}
	src   engine.Source
	err   error
}

// OpenPending opens path through a transport made by open, in the
// background. Close the transport it returns once the pass is over.
func OpenPending(ctx context.Context, name, path string, open func() (Transport, error)) (*PendingSource, func()) {
	p := &PendingSource{name: name, ready: make(chan struct{})}
	var t Transport
	go func() {
		defer close(p.ready)
		var err error
		if t, err = open(); err != nil {
			p.err = err
			return
		}
		p.src, p.err = t.Source(ctx, path)
	}()
	return p, func() {
		<-p.ready
		if t != nil {
			t.Close()
		}
	}
}

func (p *PendingSource) wait(ctx context.Context) (engine.Source, error) {
	select {
	case <-p.ready:
		return p.src, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// String names the source.
func (p *PendingSource) String() string { return p.name }

// Join names one path of the source.
func (p *PendingSource) Join(rel string) string { return tree.JoinName(p.name, rel) }

// Scan waits for the source, then scans it.
func (p *PendingSource) Scan(ctx context.Context, c tree.ScanConfig) (tree.Scan, error) {
	s, err := p.wait(ctx)
	if err != nil {
		return nil, err
	}
	return s.Scan(ctx, c)
}

// Fetch waits for the source, then asks it for a file.
func (p *PendingSource) Fetch(ctx context.Context, req *send.Request) (tree.Reply, error) {
	s, err := p.wait(ctx)
	if err != nil {
		return nil, err
	}
	return s.Fetch(ctx, req)
}

// opened returns the source once open, nil if it failed to open.
func (p *PendingSource) opened() engine.Source {
	s, err := p.wait(context.Background())
	if err != nil {
		return nil
	}
	return s
}

// SignsBasis says whether the source, once open, signs old copies itself
// (send.BasisSigner: stock rsync).
func (p *PendingSource) SignsBasis() bool {
	bs, ok := p.opened().(send.BasisSigner)
	return ok && bs.SignsBasis()
}

// FetchesAhead says whether the source, once open, takes requests ahead
// of the workers (send.AheadFetcher: stock rsync).
func (p *PendingSource) FetchesAhead() bool {
	af, ok := p.opened().(send.AheadFetcher)
	return ok && af.FetchesAhead()
}

// wireCounter is a source that counts the bytes that crossed its
// connection (msync's remote source, the rsync client), which a pass
// reports as its wire bytes; a local tree has none.
type wireCounter interface {
	WireBytes() int64
}

// WireBytes returns the bytes that crossed the connection, once open.
func (p *PendingSource) WireBytes() int64 {
	select {
	case <-p.ready:
		if wb, ok := p.src.(wireCounter); ok {
			return wb.WireBytes()
		}
	default:
	}
	return 0
}
