// Package netx is the accept loop both of msync's daemons run: it keeps
// accepting through transient errors (out of descriptors, aborted
// connections), refuses clients beyond a limit politely, gives each
// connection a context that ends when the daemon stops or the client goes,
// drops clients that stay silent, and keeps one connection's panic from
// stopping the others.
package netx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/msync/msync/internal/relpath"
	"golang.org/x/sys/unix"
)

// Defaults of Config.
const (
	DefaultMaxConns  = 64
	DefaultHandshake = 30 * time.Second
	DefaultIdle      = 10 * time.Minute
	DefaultGrace     = 5 * time.Second
)

// Backoff bounds between accepts that fail with a transient error.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Config configures Serve. Zero fields take the defaults above.
type Config struct {
	Name string    // starts log lines ("msync serve")
	Log  io.Writer // nil discards
	// MaxConns is how many connections are served at once; a client
	// beyond it is handed to Refuse, then closed.
	MaxConns int
	// Refuse tells a client over the limit why it is turned away. It runs
	// on its own goroutine with the connection's deadline set a few
	// seconds ahead; nil just closes the connection.
	Refuse func(nc net.Conn, max int)
	// Handshake is the deadline, from the accept, by which the client must
	// have said who it is: handle clears it with nc.SetDeadline(time.Time{})
	// once the client's request is read. Negative: none.
	Handshake time.Duration
	// Idle drops a connection on which nothing was read or written for
	// this long while the daemon waits on the client: a write blocked
	// because the client does not read, or a read while the connection is
	// not Busy. Work that reads nothing (a scan before its answer) is
	// never idleness. Negative: never.
	Idle time.Duration
	// Grace is how long Serve waits, once ctx ends and every connection is
	// closed, for their handlers to return.
	Grace time.Duration
}

func (c *Config) defaults() {
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Handshake == 0 {
		c.Handshake = DefaultHandshake
	}
	if c.Idle == 0 {
		c.Idle = DefaultIdle
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
}

// Handler serves one connection. ctx ends when the daemon stops, the
// client hangs up or the connection idles out; nc is closed after it
// returns.
type Handler func(ctx context.Context, nc net.Conn) error

// Serve accepts connections on ln until ctx ends, each served by handle
// on its own goroutine. It returns nil once ctx ended and the connections
// are closed (waiting at most Grace for their handlers), or the error
// that ended the listener under it.
func Serve(ctx context.Context, ln net.Listener, cfg Config, handle Handler) error {
	cfg.defaults()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	s := &server{cfg: cfg, conns: map[*conn]struct{}{}}
	defer s.shutdown()
	backoff := time.Duration(0)
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Anything else is the moment's trouble (EMFILE, ENFILE,
			// ECONNABORTED, ENOBUFS, ...): wait a little and go on.
			if backoff == 0 {
				backoff = minBackoff
				fmt.Fprintf(cfg.Log, "%s: accept: %v (retrying)\n", cfg.Name, err)
			} else {
				backoff = min(2*backoff, maxBackoff)
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		s.serve(ctx, nc, handle)
	}
}

type server struct {
	cfg      Config
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[*conn]struct{}
	refusing atomic.Int32
}

// maxRefusing bounds the goroutines telling clients over the limit why.
const maxRefusing = 16

func (s *server) serve(ctx context.Context, nc net.Conn, handle Handler) {
	s.mu.Lock()
	full := len(s.conns) >= s.cfg.MaxConns
	var c *conn
	if !full {
		c = newConn(ctx, nc, s.cfg.Idle)
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if full {
		if s.cfg.Refuse == nil || s.refusing.Load() >= maxRefusing {
			nc.Close()
			return
		}
		s.refusing.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.refusing.Add(-1)
			defer nc.Close()
			defer s.recover(nc)
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			s.cfg.Refuse(nc, s.cfg.MaxConns)
		}()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// The slot is free before the client sees its connection close,
		// so that it can come straight back.
		defer c.close()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
		defer s.recover(nc)
		start := time.Now()
		if s.cfg.Handshake > 0 {
			nc.SetDeadline(start.Add(s.cfg.Handshake))
		}
		if err := handle(c.ctx, c); err != nil {
			var ne net.Error
			switch {
			case c.idled.Load():
				err = fmt.Errorf("dropped after %v without traffic: %w", s.cfg.Idle, err)
			case s.cfg.Handshake > 0 && errors.As(err, &ne) && ne.Timeout() && time.Since(start) >= s.cfg.Handshake:
				err = fmt.Errorf("no request within %v: %w", s.cfg.Handshake, err)
			}
			fmt.Fprintf(s.cfg.Log, "%s: %s: %s\n", s.cfg.Name, nc.RemoteAddr(), relpath.EscapeLines(err.Error()))
		}
	}()
}

func (s *server) recover(nc net.Conn) {
	if p := recover(); p != nil {
		fmt.Fprintf(s.cfg.Log, "%s: %s: internal error: %v\n%s", s.cfg.Name, nc.RemoteAddr(), p, debug.Stack())
	}
}

// shutdown closes every connection and waits, at most Grace, for their
// handlers.
func (s *server) shutdown() {
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.cfg.Grace):
		fmt.Fprintf(s.cfg.Log, "%s: connections still busy %v after closing them; exiting anyway\n", s.cfg.Name, s.cfg.Grace)
	}
}

// conn is a served connection: it records when bytes last moved, and a
// watcher ends its context (and closes it) when the client hangs up or a
// read waits while nothing moved for the idle time.
type conn struct {
	net.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	last    atomic.Int64 // unix nanoseconds of the last read or write, or of a wait's start
	reading atomic.Int32 // reads under way
	writing atomic.Int32 // writes under way
	busy    atomic.Int32 // Busy marks
	idled   atomic.Bool
	once    sync.Once
}

func newConn(parent context.Context, nc net.Conn, idle time.Duration) *conn {
	c := &conn{Conn: nc}
	c.ctx, c.cancel = context.WithCancel(context.WithValue(parent, connKey{}, c))
	c.last.Store(time.Now().UnixNano())
	go c.watch(idle)
	return c
}

func (c *conn) Read(p []byte) (int, error) {
	if c.reading.Add(1) == 1 {
		c.last.Store(time.Now().UnixNano()) // the wait starts now
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	c.reading.Add(-1)
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	if c.writing.Add(1) == 1 {
		c.last.Store(time.Now().UnixNano())
	}
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	c.writing.Add(-1)
	return n, err
}

type connKey struct{}

// Busy marks the connection a Handler got ctx for as working for its
// client (reading files, hashing) until done is called: a read waiting
// meanwhile is not idleness. Outside a served connection it does nothing.
func Busy(ctx context.Context) (done func()) {
	c, _ := ctx.Value(connKey{}).(*conn)
	if c == nil {
		return func() {}
	}
	c.busy.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			if c.busy.Add(-1) == 0 {
				c.last.Store(time.Now().UnixNano()) // waiting starts now
			}
		})
	}
}

// waiting reports whether the daemon waits on the client.
func (c *conn) waiting() bool {
	return c.writing.Load() > 0 || (c.reading.Load() > 0 && c.busy.Load() == 0)
}

// CloseWrite half-closes, when the connection can.
func (c *conn) CloseWrite() error {
	return CloseWrite(c.Conn)
}

func (c *conn) close() {
	c.once.Do(func() {
		c.cancel()
		c.Conn.Close()
	})
}

// Close ends the connection and its context.
func (c *conn) Close() error {
	c.close()
	return nil
}

// watch ends the connection when the client hangs up (the kernel saw its
// FIN or a reset: the work it asked for is nobody's anymore) or when a
// read waits and nothing moved for idle.
func (c *conn) watch(idle time.Duration) {
	tick := 250 * time.Millisecond
	if idle > 0 {
		tick = min(tick, idle/4)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			c.close()
			return
		case <-t.C:
		}
		if idle > 0 && c.waiting() && time.Since(time.Unix(0, c.last.Load())) > idle {
			c.idled.Store(true)
			c.close()
			return
		}
		if hungUp(c.Conn) {
			c.cancel()
		}
	}
}

// hungUp reports whether the peer of nc shut its side down or reset it.
func hungUp(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			gone = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return gone || err != nil
}

// closeWriter is a connection whose writing side can be closed alone
// (*net.TCPConn, *net.UnixConn, a netx connection).
type closeWriter interface{ CloseWrite() error }

// deadliner is a connection whose reads and writes can time out.
type deadliner interface{ SetDeadline(time.Time) error }

// readDeadliner is a connection whose reads can time out.
type readDeadliner interface{ SetReadDeadline(time.Time) error }

// CloseWrite half-closes c when it can, so that the peer reads the end of
// the stream while c still reads; it does nothing to a stream that
// cannot (a pipe), which the caller closes whole.
func CloseWrite(c any) error {
	if cw, ok := c.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SetDeadline sets c's read and write deadline when c has one (a network
// connection; not a pipe to a remote shell).
func SetDeadline(c any, t time.Time) error {
	if d, ok := c.(deadliner); ok {
		return d.SetDeadline(t)
	}
	return nil
}

// SetReadDeadline sets c's read deadline when c has one.
func SetReadDeadline(c any, t time.Time) error {
	if d, ok := c.(readDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
