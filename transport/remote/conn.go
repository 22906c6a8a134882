// Package remote is msync's own protocol between two msync processes, on
// any byte stream (ssh stdio, TCP): one end serves a tree as a source
// (scans streamed in manifest format under credit-based flow control, file
// requests answered with delta operations by a pool of readers), the other
// runs the pass where the destination is. Pushes run the pass on the server
// with the client serving its tree; pulls and verifications run it on the
// client. Many file requests are in flight at once, so no per-file round
// trip stalls the pass.
package remote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/msync/msync/transport/wire"
)

// ErrClosed is returned for operations on a closed connection.
var ErrClosed = errors.New("connection closed")

// Conn is one protocol connection.
type Conn struct {
	rw       io.ReadWriteCloser
	fr       *wire.Reader
	name     string // the peer, for messages
	version  uint16
	features uint64
	compress bool

	out     chan outFrame
	done    chan struct{} // closed by fail
	failErr error
	once    sync.Once
	wbytes  atomic.Int64
	readerr chan struct{} // closed when the read loop ends

	zenc *zstd.Encoder
	zdec *zstd.Decoder

	mu      sync.Mutex
	nextID  uint32
	scans   map[uint32]*scanStream
	fetches map[uint32]*fetchReply

	served  atomic.Pointer[servedSource] // set when this end serves a tree
	pending error                        // why this end sent TError

	sigMu sync.Mutex           // held while a signature and its file request are queued
	busy  func() (done func()) // ServerConfig.Busy, when serving

	opens  chan wire.OpenRequest
	openOK chan []byte
	push   atomic.Pointer[pushClient]
}

type outFrame struct {
	t       wire.Type
	stream  uint32
	payload []byte
	chunk   bool // payload is a chunk of chunkPool: the write loop returns it
}

// Options configure a connection.
type Options struct {
	Name     string // the peer, for messages ("host:path", "msync://host/mod")
	Compress bool   // compress file data with zstd when the peer can
}

// NewConn performs the handshake on rw and starts the connection.
func NewConn(rw io.ReadWriteCloser, o Options) (*Conn, error) {
	ours := wire.Hello{Version: wire.Version, MinVersion: wire.MinVersion, Features: wire.KnownFeatures}
	c := &Conn{rw: rw, name: o.Name, out: make(chan outFrame, 256), done: make(chan struct{}),
		readerr: make(chan struct{}), scans: map[uint32]*scanStream{}, fetches: map[uint32]*fetchReply{},
		opens: make(chan wire.OpenRequest, 1), openOK: make(chan []byte, 1)}
	v, f, err := wire.Handshake(rw, rw, ours)
	if err != nil {
		rw.Close()
		return nil, fmt.Errorf("%s: %w", o.Name, err)
	}
	c.version, c.features = v, f
	c.zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(8<<20))
	if o.Compress {
		c.setCompress()
	}
	c.fr = wire.NewReader(rw)
	c.wbytes.Add(wire.HelloSize)
	go c.writeLoop()
	go c.readLoop()
	return c, nil
}

// setCompress makes this end compress the file data it sends, when the
// peer can read it. Called before any data is sent.
func (c *Conn) setCompress() {
	if c.features&wire.FeatZstd == 0 || c.compress {
		return
	}
	c.zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(2))
	c.compress = true
}

// WireBytes returns the bytes sent and received so far.
func (c *Conn) WireBytes() int64 { return c.wbytes.Load() + c.fr.BytesRead() + wire.HelloSize }

// Done is closed when the connection has failed or was closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.failErr
	default:
		return nil
	}
}

// Close ends the connection.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	<-c.readerr
	return nil
}

// fail ends the connection with err, waking everything that waits on it.
func (c *Conn) fail(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		if c.pending != nil {
			// This end gave up first (failAfterError): what follows, the
			// peer hanging up, is its consequence, not its cause.
			err = c.pending
		}
		c.mu.Unlock()
		c.failErr = err
		close(c.done)
		c.rw.Close()
		c.mu.Lock()
		for id, f := range c.fetches {
			f.abort()
			delete(c.fetches, id)
		}
		for _, s := range c.scans {
			s.abort(err)
		}
		c.mu.Unlock()
		if sv := c.served.Load(); sv != nil {
			sv.stop()
		}
		if pc := c.push.Load(); pc != nil {
			pc.abort(err)
		}
	})
}

// send queues a frame; payload must not be modified afterwards.
func (c *Conn) send(t wire.Type, stream uint32, payload []byte) error {
	return c.queue(outFrame{t, stream, payload, false})
}

func (c *Conn) queue(f outFrame) error {
	if len(f.payload) > wire.MaxPayload {
		return fmt.Errorf("internal error: %s frame of %d bytes", f.t, len(f.payload))
	}
	select {
	case <-c.done:
		return c.closedErr()
	default:
	}
	select {
	case c.out <- f:
		return nil
	case <-c.done:
		return c.closedErr()
	}
}

func (c *Conn) closedErr() error {
	err := c.failErr
	if err == nil || err == ErrClosed || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", c.name, ErrClosed)
	}
	return err
}

// failAfterError tells the peer why this end gives up, then fails with err.
func (c *Conn) failAfterError(err error) {
	msg := err.Error()
	err = fmt.Errorf("%s: %w", c.name, err)
	c.mu.Lock()
	if c.pending == nil {
		c.pending = err
	}
	c.mu.Unlock()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	select {
	case c.out <- outFrame{wire.TError, 0, []byte(msg), false}:
		// The write loop fails the connection once the message is out.
		select {
		case <-c.done:
		case <-time.After(2 * time.Second):
		}
	case <-c.done:
	case <-time.After(time.Second):
	}
	c.fail(err)
}

func (c *Conn) writeLoop() {
	bw := bufio.NewWriterSize(c.rw, 256<<10)
	var hdr []byte
	for {
		var f outFrame
		select {
		case f = <-c.out:
		case <-c.done:
			return
		}
		hdr = wire.AppendHeader(hdr[:0], f.t, f.stream, len(f.payload))
		if _, err := bw.Write(hdr); err != nil {
			c.fail(fmt.Errorf("%s: send: %w", c.name, err))
			return
		}
		if err := writePayload(bw, c.rw, f.payload); err != nil {
			c.fail(fmt.Errorf("%s: send: %w", c.name, err))
			return
		}
		c.wbytes.Add(int64(len(hdr) + len(f.payload)))
		if f.chunk {
			putChunk(f.payload)
		}
		if len(c.out) == 0 || f.t == wire.TError || f.t == wire.TResult {
			if err := bw.Flush(); err != nil {
				c.fail(fmt.Errorf("%s: send: %w", c.name, err))
				return
			}
			if f.t == wire.TError {
				c.mu.Lock()
				err := c.pending
				c.mu.Unlock()
				if err == nil {
					err = fmt.Errorf("gave up: %s", f.payload)
				}
				c.fail(err)
				return
			}
		}
	}
}

// directWrite: payloads this large skip the write buffer (what is buffered
// goes first), which saves copying every byte of file data once more.
const directWrite = 64 << 10

func writePayload(bw *bufio.Writer, w io.Writer, p []byte) error {
	if len(p) < directWrite {
		_, err := bw.Write(p)
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// testHookFrame runs on each frame read, before it is dispatched.
var testHookFrame = func(wire.Frame) {}

func (c *Conn) readLoop() {
	defer close(c.readerr)
	defer func() {
		// The peer's frames are decoded here, on a goroutine of its
		// own: a panic would end the whole daemon, not only this
		// connection. End the connection.
		if r := recover(); r != nil {
			c.failAfterError(fmt.Errorf("internal error: %v", r))
		}
	}()
	for {
		f, err := c.fr.Next()
		if err != nil {
			if err == io.EOF {
				c.fail(io.EOF)
			} else {
				select {
				case <-c.done: // we closed it
				default:
					c.fail(fmt.Errorf("%s: %w", c.name, err))
				}
			}
			return
		}
		testHookFrame(f)
		if err := c.dispatch(f); err != nil {
			c.failAfterError(err)
			return
		}
	}
}

// RemoteError is an error the peer reported.
type RemoteError struct {
	Peer string
	Msg  string
}

func (e *RemoteError) Error() string { return e.Peer + ": " + e.Msg }

func (c *Conn) dispatch(f wire.Frame) error {
	switch f.Type {
	case wire.TError:
		c.fail(&RemoteError{Peer: c.name, Msg: string(f.Payload)})
		return nil
	case wire.TOpen:
		var req wire.OpenRequest
		if err := wire.DecodeJSON(f.Payload, &req); err != nil {
			return err
		}
		select {
		case c.opens <- req:
			return nil
		default:
			return fmt.Errorf("%w: second open request", wire.ErrProtocol)
		}
	case wire.TOpenOK:
		select {
		case c.openOK <- append([]byte(nil), f.Payload...):
			return nil
		default:
			return fmt.Errorf("%w: unexpected open reply", wire.ErrProtocol)
		}
	case wire.TScanReq, wire.TCredit, wire.TFetch, wire.TSig:
		sv := c.served.Load()
		if sv == nil {
			return fmt.Errorf("%w: the peer sent a %s but this end serves no tree", wire.ErrProtocol, f.Type)
		}
		return sv.dispatch(f)
	case wire.TScanData, wire.THashErr, wire.TScanEnd:
		c.mu.Lock()
		s := c.scans[f.Stream]
		c.mu.Unlock()
		if s == nil {
			return fmt.Errorf("%w: %s for unknown scan %d", wire.ErrProtocol, f.Type, f.Stream)
		}
		return s.dispatch(f)
	case wire.TData, wire.TDataZ, wire.TEnd:
		c.mu.Lock()
		r := c.fetches[f.Stream]
		if f.Type == wire.TEnd {
			delete(c.fetches, f.Stream)
		}
		c.mu.Unlock()
		if r == nil {
			return fmt.Errorf("%w: %s for unknown request %d", wire.ErrProtocol, f.Type, f.Stream)
		}
		return r.dispatch(c, f)
	case wire.TItem, wire.TLog, wire.TProgress, wire.TResult:
		pc := c.push.Load()
		if pc == nil {
			return fmt.Errorf("%w: unexpected %s", wire.ErrProtocol, f.Type)
		}
		return pc.dispatch(f)
	}
	return fmt.Errorf("%w: unexpected %s", wire.ErrProtocol, f.Type)
}

func (c *Conn) newID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	return c.nextID
}

// dataFrame returns the frame for p, a chunk of file data from chunkPool:
// p itself, which the frame then owns (chunk), or its compressed form.
func (c *Conn) dataFrame(p []byte) (t wire.Type, payload []byte, chunk bool) {
	if c.compress && len(p) >= 512 {
		z := c.zenc.EncodeAll(p, make([]byte, 0, len(p)/2))
		if len(z) < len(p)*9/10 {
			return wire.TDataZ, z, false
		}
	}
	return wire.TData, p, true
}

// context returns a context cancelled when the connection ends.
func (c *Conn) context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
