package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/internal/netx"
	"github.com/msync/msync/internal/relpath"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/wire"
)

// OpenSource asks the server to serve path (a directory on its host, or
// "module/path" on a daemon) and returns it as a Source.
func (c *Conn) OpenSource(ctx context.Context, path, token string) (*Source, error) {
	if _, err := c.open(ctx, wire.OpenRequest{Op: "source", Path: path, Token: token, Compress: c.compress}); err != nil {
		return nil, err
	}
	return c.Source(path), nil
}

func (c *Conn) open(ctx context.Context, req wire.OpenRequest) (*wire.OpenReply, error) {
	b, err := wire.EncodeJSON(req)
	if err != nil {
		return nil, err
	}
	if err := c.send(wire.TOpen, 0, b); err != nil {
		return nil, err
	}
	select {
	case p := <-c.openOK:
		var rep wire.OpenReply
		if err := wire.DecodeJSON(p, &rep); err != nil {
			return nil, err
		}
		return &rep, nil
	case <-c.done:
		return nil, c.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// PushHandlers receive what a pass run by the peer reports as it goes.
type PushHandlers struct {
	OnItem   func(engine.Item)
	Log      io.Writer
	Counters *engine.Counters
}

type pushClient struct {
	h      PushHandlers
	mu     sync.Mutex
	result *wire.PassResult
	err    error
	done   chan struct{}
	once   sync.Once
}

func (p *pushClient) finish() { p.once.Do(func() { close(p.done) }) }

func (p *pushClient) abort(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.finish()
}

func (p *pushClient) dispatch(f wire.Frame) error {
	switch f.Type {
	case wire.TItem:
		it, err := wire.DecodeItem(f.Payload)
		if err != nil {
			return err
		}
		if p.h.OnItem != nil {
			// Item.String escapes the path and the note; the code is
			// the peer's too.
			p.h.OnItem(engine.Item{Code: relpath.Escape(it.Code), Path: it.Path, Note: it.Note})
		}
	case wire.TLog:
		if p.h.Log != nil {
			// The peer's log goes to a terminal: no control sequence
			// of its (nor of a name it prints) reaches it.
			io.WriteString(p.h.Log, relpath.EscapeLines(string(f.Payload)))
		}
	case wire.TProgress:
		v, err := wire.DecodeUvarints(f.Payload, 6)
		if err != nil {
			return err
		}
		if c := p.h.Counters; c != nil {
			c.Scanned.Store(int64(v[0]))
			c.FilesDone.Store(int64(v[1]))
			c.BytesDone.Store(int64(v[2]))
			c.BytesQueued.Store(int64(v[3]))
			c.FilesQueued.Store(int64(v[4]))
			c.ScanFinished.Store(v[5] != 0)
		}
	case wire.TResult:
		var r wire.PassResult
		if err := wire.DecodeJSON(f.Payload, &r); err != nil {
			return err
		}
		p.mu.Lock()
		p.result = &r
		p.mu.Unlock()
		p.finish()
	}
	return nil
}

// Push runs a pass on the server into path, with local (this host's tree)
// as its source; o.Src names the source in the server's state directory.
func (c *Conn) Push(ctx context.Context, local *tree.Local, path, token string, o PushOptions, h PushHandlers) (*record.Result, error) {
	pc := &pushClient{h: h, done: make(chan struct{})}
	c.push.Store(pc)
	c.Serve(local)
	w := OptionsToWire(&o)
	if _, err := c.open(ctx, wire.OpenRequest{Op: "receive", Path: path, Token: token, Pass: &w}); err != nil {
		return nil, err
	}
	select {
	case <-pc.done:
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
	pc.mu.Lock()
	r, err := pc.result, pc.err
	pc.mu.Unlock()
	if r == nil {
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, ErrClosed) {
			err = fmt.Errorf("%s: connection lost before the pass ended: %w", c.name, ErrClosed)
		}
		return nil, err
	}
	res, err := decodePassResult(r)
	if err != nil {
		return nil, err
	}
	if r.Err != "" {
		return res, &RemoteError{Peer: c.name, Msg: r.Err}
	}
	if res == nil {
		return nil, fmt.Errorf("%w: pass result without a result", wire.ErrProtocol)
	}
	return res, nil
}

// ServerConfig configures the serving end of a connection.
type ServerConfig struct {
	// Resolve checks a request and returns the local directory it names,
	// a host path the server opens (a remote shell's user reaches what it
	// may).
	Resolve func(req *wire.OpenRequest) (string, error)
	// ResolveAt, when set, replaces Resolve for a server that confines
	// clients (a daemon): it returns the directory already open beneath
	// its module, which the server then works through, never opening a
	// path.
	ResolveAt func(req *wire.OpenRequest) (*Target, error)
	// Log receives the server's own notes; nil discards them.
	Log io.Writer
	// StateDir, when set, chooses where a "receive" keeps its state (a
	// daemon's own state root, keyed by what req names) and the client may
	// not name one: a request that does is refused. Nil lets the client
	// choose (PassOptions.StateDir, else the pair's default here): right
	// for a server that runs as the client's own user (ssh), who could
	// run anything on this host anyway.
	StateDir func(req *wire.OpenRequest, root string) (string, error)
	// Busy, when set, marks the connection as working for its client
	// until done is called (a daemon's idle timeout then waits).
	Busy func() (done func())
}

// Serve answers one connection: a "source" request serves a tree until the
// client hangs up; a "receive" request runs a pass with the client's tree
// as the source and reports its result.
func Serve(ctx context.Context, rw io.ReadWriteCloser, cfg ServerConfig) (err error) {
	c, err := NewConn(rw, Options{Name: "client"})
	if err != nil {
		return err
	}
	c.busy = cfg.Busy
	defer c.Close()
	defer func() {
		// A panic in a served connection ends it, never the daemon.
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
			c.failAfterError(err)
		}
	}()
	req, err := awaitOpen(ctx, c)
	if err != nil {
		return err
	}
	netx.SetDeadline(rw, time.Time{}) // the request is in: the handshake's deadline is over
	t, err := cfg.target(&req)
	if err != nil {
		c.failAfterError(err)
		return err
	}
	if t.Root != nil {
		defer t.Root.Close()
	}
	switch req.Op {
	case "source":
		return serveSource(ctx, c, t, req.Compress)
	case "receive":
		if req.Pass == nil {
			err := fmt.Errorf("%w: receive without pass options", wire.ErrProtocol)
			c.failAfterError(err)
			return err
		}
		sd, err := cfg.pushState(&req, t)
		if err != nil {
			c.failAfterError(err)
			return err
		}
		return receive(ctx, c, t, sd, cfg.StateDir != nil, req.Pass)
	}
	err = fmt.Errorf("%w: unknown request %q", wire.ErrProtocol, req.Op)
	c.failAfterError(err)
	return err
}

// awaitOpen waits for the client's request, a minute at most.
func awaitOpen(ctx context.Context, c *Conn) (wire.OpenRequest, error) {
	select {
	case req := <-c.opens:
		return req, nil
	case <-c.done:
		return wire.OpenRequest{}, c.closedErr()
	case <-ctx.Done():
		return wire.OpenRequest{}, ctx.Err()
	case <-time.After(time.Minute):
		err := errors.New("no request within a minute")
		c.failAfterError(err)
		return wire.OpenRequest{}, err
	}
}

// target resolves what req names: beneath a module (ResolveAt) or as a
// path of this host (Resolve).
func (cfg *ServerConfig) target(req *wire.OpenRequest) (*Target, error) {
	if cfg.ResolveAt != nil {
		return cfg.ResolveAt(req)
	}
	root, err := cfg.Resolve(req)
	if err != nil {
		return nil, err
	}
	return &Target{Path: root, Key: root}, nil
}

// pushState is the state directory of a push into t: the client's
// choice, unless the daemon keeps the state of pushes itself.
func (cfg *ServerConfig) pushState(req *wire.OpenRequest, t *Target) (string, error) {
	sd := req.Pass.StateDir
	if cfg.StateDir == nil {
		return sd, nil
	}
	if sd != "" {
		return "", fmt.Errorf("this daemon keeps the state of pushes under its own --state-dir: a client cannot choose it (state directory %q refused)", sd)
	}
	return cfg.StateDir(req, t.Key)
}

// serveSource serves t as a source until the client or ctx ends the
// connection.
func serveSource(ctx context.Context, c *Conn, t *Target, compress bool) error {
	if compress {
		c.setCompress()
	}
	local := tree.NewLocal(t.Path)
	if t.Root != nil {
		r, err := t.Root.Dup()
		if err != nil {
			c.failAfterError(err)
			return err
		}
		local = tree.NewLocalAt(r)
	}
	c.Serve(local)
	defer func() {
		// The tree's descriptors are closed only once nothing
		// reads through them.
		c.Close()
		c.served.Load().wait()
		local.Close()
	}()
	b, _ := wire.EncodeJSON(wire.OpenReply{Path: t.Path})
	if err := c.send(wire.TOpenOK, 0, b); err != nil {
		return err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := c.Err(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

type logWriter struct{ c *Conn }

func (w logWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		n := min(len(p), 64<<10)
		if err := w.c.send(wire.TLog, 0, append([]byte(nil), p[:n]...)); err != nil {
			return 0, err
		}
		p = p[n:]
	}
	return total, nil
}

// Target is the local directory a request names.
type Target struct {
	// Root is the directory, open beneath a daemon's module; nil when
	// Path is a host path the server opens itself.
	Root *fsx.Root
	// Path names the directory to the client: with Root, module-relative.
	Path string
	// Created says the daemon created Root for a push; with no Root (a dry
	// run), that the directory does not exist.
	Created bool
	// Key is the host path, only to name a push's state directory.
	Key string
}

// receive runs the pass into t, with its state in stateDir (or the
// pair's default on this host when empty); a daemon's own (daemonState)
// is never named to the client (state.ForClient).
func receive(ctx context.Context, c *Conn, t *Target, stateDir string, daemonState bool, w *wire.PassOptions) error {
	po, err := OptionsFromWire(w)
	var o engine.Options
	if err == nil {
		o = EngineOptions(&po)
	}
	if err == nil && t.Root == nil && t.Created && !o.DryRun {
		err = errors.New("destination not open")
	}
	if err != nil {
		c.failAfterError(err)
		return err
	}
	root := t.Path
	o.Src, o.Dst, o.DstRoot, o.DstCreated = po.SrcName, root, t.Root, t.Created
	o.Source = c.Source(po.SrcName)
	o.StateDir = stateDir
	if o.StateDir == "" {
		if o.StateDir, err = state.DefaultDir(po.SrcName, t.Key); err != nil {
			c.failAfterError(err)
			return err
		}
	}
	o.Log = logWriter{c}
	if po.Itemize {
		o.OnItem = func(it engine.Item) {
			c.send(wire.TItem, 0, wire.EncodeItem(wire.Item{Code: it.Code, Path: it.Path, Note: it.Note}))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if po.Progress {
		o.Counters = &engine.Counters{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
				case <-stop:
					return
				}
				k := o.Counters
				fin := uint64(0)
				if k.ScanFinished.Load() {
					fin = 1
				}
				c.send(wire.TProgress, 0, wire.EncodeUvarints(uint64(k.Scanned.Load()), uint64(k.FilesDone.Load()),
					uint64(k.BytesDone.Load()), uint64(k.BytesQueued.Load()), uint64(k.FilesQueued.Load()), fin))
			}
		}()
	}
	b, _ := wire.EncodeJSON(wire.OpenReply{Path: root})
	if err := c.send(wire.TOpenOK, 0, b); err != nil {
		return err
	}
	pctx, cancel := c.context(ctx)
	defer cancel()
	res, err := engine.Run(pctx, o)
	close(stop)
	wg.Wait()
	errText := ""
	if err != nil {
		errText = err.Error()
		if daemonState {
			errText = state.ForClient(err, stateDir).Error()
		}
	}
	out := encodePassResult(res, errText)
	if serr := c.send(wire.TResult, 0, out); serr != nil {
		return serr
	}
	// Wait for the client to hang up, so that the result is read.
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
	}
	return err
}
