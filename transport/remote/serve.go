package remote

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/wire"
)

// Limits on what a peer may ask of a served tree at once.
const (
	senders         = 8       // files read concurrently
	maxOutstanding  = 4096    // file requests queued
	maxPendingSig   = 256     // requests with signature bytes and no TFetch yet
	maxPendingBytes = 1 << 24 // signature bytes received, not yet claimed by their TFetch
	maxScans        = 16
)

// servedSource answers scan and file requests for a local tree.
type servedSource struct {
	c     *Conn
	local *tree.Local
	ctx   context.Context
	stopf context.CancelFunc

	// Touched only by the read loop:
	sigs     map[uint32][]byte
	sigBytes int

	mu    sync.Mutex
	scans map[uint32]*servedScan

	reqs chan fetchJob
	wg   sync.WaitGroup

	maxQueued atomic.Int64 // most file requests seen waiting at once
	queuedSig atomic.Int64 // signature bytes of the requests queued or being answered
}

// testHookSend runs before a sender answers a request; tests use it to
// hold the answers back.
var testHookSend = func() {}

type fetchJob struct {
	id      uint32
	req     *send.Request
	sigSize int // bytes of its signature on the wire, counted in queuedSig
}

// Serve makes this end answer the peer's scan and file requests for the
// tree at local.
func (c *Conn) Serve(local *tree.Local) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &servedSource{c: c, local: local, ctx: ctx, stopf: cancel, sigs: map[uint32][]byte{},
		scans: map[uint32]*servedScan{}, reqs: make(chan fetchJob, maxOutstanding)}
	for range senders {
		s.wg.Add(1)
		go s.sender()
	}
	c.served.Store(s)
}

// wait returns once every sender and scan has ended, after stop (the
// connection's read loop, which starts them, has ended too).
func (s *servedSource) wait() { s.wg.Wait() }

func (s *servedSource) stop() {
	s.stopf()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range s.scans {
		sc.wake()
	}
}

func (s *servedSource) dispatch(f wire.Frame) error {
	switch f.Type {
	case wire.TScanReq:
		var req wire.ScanRequest
		if err := wire.DecodeJSON(f.Payload, &req); err != nil {
			return err
		}
		s.mu.Lock()
		if s.scans[f.Stream] != nil || len(s.scans) >= maxScans {
			s.mu.Unlock()
			return fmt.Errorf("%w: scan %d: duplicate id or too many scans", wire.ErrProtocol, f.Stream)
		}
		sc := &servedScan{s: s, id: f.Stream}
		sc.cond = sync.NewCond(&sc.mu)
		s.scans[f.Stream] = sc
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sc.run(req)
		}()
	case wire.TCredit:
		s.mu.Lock()
		sc := s.scans[f.Stream]
		s.mu.Unlock()
		if sc == nil {
			return nil // a credit that crossed the end of its scan
		}
		v, err := wire.DecodeUvarints(f.Payload, 1)
		if err != nil {
			return err
		}
		if v[0] > 1<<40 {
			return fmt.Errorf("%w: credit of %d bytes", wire.ErrProtocol, v[0])
		}
		sc.mu.Lock()
		sc.credit += int64(v[0])
		sc.cond.Broadcast()
		sc.mu.Unlock()
	case wire.TSig:
		cur, ok := s.sigs[f.Stream]
		if !ok && len(s.sigs) >= maxPendingSig {
			return fmt.Errorf("%w: too many signatures pending", wire.ErrProtocol)
		}
		if len(cur)+len(f.Payload) > wire.MaxSignature || s.sigBytes+len(f.Payload) > maxPendingBytes {
			return fmt.Errorf("%w: signatures without their file request exceed %d MiB (request %d)", wire.ErrProtocol, maxPendingBytes>>20, f.Stream)
		}
		s.sigs[f.Stream] = append(cur, f.Payload...)
		s.sigBytes += len(f.Payload)
	case wire.TFetch:
		sig := s.sigs[f.Stream]
		delete(s.sigs, f.Stream)
		s.sigBytes -= len(sig)
		req, err := wire.DecodeFetch(f.Payload, sig)
		if err != nil {
			return err
		}
		if err := s.queueSig(len(sig)); err != nil {
			return err
		}
		if n := int64(len(s.reqs) + 1); n > s.maxQueued.Load() {
			s.maxQueued.Store(n)
		}
		select {
		case s.reqs <- fetchJob{f.Stream, req, len(sig)}:
		default:
			return fmt.Errorf("%w: more than %d file requests outstanding", wire.ErrProtocol, maxOutstanding)
		}
	}
	return nil
}

func (s *servedSource) sender() {
	defer s.wg.Done()
	for {
		select {
		case j := <-s.reqs:
			done := s.c.markBusy()
			testHookSend()
			w := &dataWriter{c: s.c, id: j.id, buf: getChunk()}
			res := s.local.Send(s.ctx, j.req, w)
			done()
			s.queuedSig.Add(-int64(j.sigSize))
			var err error
			if res.Status == send.OK {
				err = w.flush()
			}
			putChunk(w.buf)
			if err != nil {
				return
			}
			if s.c.send(wire.TEnd, j.id, wire.EncodeEnd(res)) != nil {
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// dataWriter cuts a file's operations into data frames.
type dataWriter struct {
	c   *Conn
	id  uint32
	buf []byte
}

// chunkPool holds the buffers file data is framed in. A full buffer
// becomes the payload of its frame as it is (no copy) and the write loop
// puts it back once written.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, wire.ChunkSize); return &b }}

func getChunk() []byte { return (*chunkPool.Get().(*[]byte))[:0] }

func putChunk(b []byte) {
	if cap(b) == wire.ChunkSize {
		b = b[:0]
		chunkPool.Put(&b)
	}
}

func (w *dataWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), wire.ChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == wire.ChunkSize {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *dataWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	t, payload, chunk := w.c.dataFrame(w.buf)
	if chunk {
		w.buf = getChunk() // the frame owns the old one now
	} else {
		w.buf = w.buf[:0]
	}
	return w.c.queue(outFrame{t, w.id, payload, chunk})
}

// servedScan streams one scan under the peer's credit.
type servedScan struct {
	s      *servedSource
	id     uint32
	mu     sync.Mutex
	cond   *sync.Cond
	credit int64
	done   func() // ends the connection's busy mark while the scan works
}

func (sc *servedScan) wake() {
	sc.mu.Lock()
	sc.cond.Broadcast()
	sc.mu.Unlock()
}

// Write sends scan bytes as the credit allows.
func (sc *servedScan) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		sc.mu.Lock()
		if sc.credit <= 0 && sc.s.ctx.Err() == nil {
			// Waiting for the peer's credit is waiting on the client.
			sc.done()
			for sc.credit <= 0 && sc.s.ctx.Err() == nil {
				sc.cond.Wait()
			}
			sc.done = sc.s.c.markBusy()
		}
		if err := sc.s.ctx.Err(); err != nil {
			sc.mu.Unlock()
			return 0, err
		}
		k := int(min(int64(len(p)), sc.credit, wire.ChunkSize))
		sc.credit -= int64(k)
		sc.mu.Unlock()
		if err := sc.s.c.send(wire.TScanData, sc.id, append([]byte(nil), p[:k]...)); err != nil {
			return 0, err
		}
		p = p[k:]
	}
	return n, nil
}

// run streams the scan; stream ends it with its problems, or run with the
// error that stopped it.
func (sc *servedScan) run(req wire.ScanRequest) {
	sc.done = sc.s.c.markBusy()
	defer func() { sc.done() }()
	if err := sc.stream(req); err != nil {
		b, _ := wire.EncodeJSON(wire.ScanEnd{Err: err.Error()})
		sc.s.c.send(wire.TScanEnd, sc.id, b)
	}
}

func (sc *servedScan) stream(req wire.ScanRequest) error {
	ctx := sc.s.ctx
	var cache *scanCache
	if !req.Hash && sc.s.c.features&wire.FeatScanDiff != 0 {
		cache = openScanCache(sc.s.local.Root, req)
	}
	// The kept scan the receiver names is the base of the diff, and (read
	// a second time) the scanner's cache of xattrs by identity.
	var base, prev *manifest.FileReader
	if cache != nil && req.Base != "" {
		if base = cache.open(req.Base); base != nil {
			defer base.Close()
			if prev = cache.open(req.Base); prev != nil {
				defer prev.Close()
			}
		}
	}
	cfg := tree.ScanConfig{Exclude: req.Exclude, Xattrs: req.Xattrs, Hash: req.Hash, Workers: scanWorkers(req.Workers)}
	if prev != nil {
		cfg.Prev = prev
	}
	scn, err := sc.s.local.Scan(ctx, cfg)
	if err != nil {
		return err
	}
	defer scn.Close()
	end := wire.ScanEnd{}
	var mw *manifest.Writer
	if base != nil {
		mw, err = manifest.NewDiffWriter(sc)
	} else {
		mw, err = manifest.NewCompactWriter(sc)
	}
	if err != nil {
		return err
	}
	// The kept scan is full (with inodes, for the xattr cache); it is named
	// by the sum of its compact form, which is what the receiver rebuilds.
	var full, sum *manifest.Writer
	var tmp *os.File
	if cache != nil {
		if tmp, full = cache.create(); tmp != nil {
			defer func() {
				tmp.Close()
				os.Remove(tmp.Name())
			}()
			sum, _ = manifest.NewCompactWriter(io.Discard)
		}
	}
	last := time.Now()
	add := func(w *manifest.Writer, e *manifest.Entry) error {
		if err := w.Add(e); err != nil {
			return err
		}
		if time.Since(last) > 50*time.Millisecond {
			// Let the peer work on what is scanned while the rest comes.
			if err := mw.Flush(); err != nil {
				return err
			}
			last = time.Now()
		}
		return nil
	}
	keep := func(e *manifest.Entry) {
		if full != nil && (full.Add(e) != nil || sum.Add(e) != nil) {
			full = nil // the cache is an optimisation: drop it, not the scan
		}
	}
	if base != nil {
		err = manifest.Diff(base, scn, func(o, n *manifest.Entry) error {
			if n != nil {
				keep(n)
			}
			switch {
			case n == nil:
				g := *o
				g.Gone = true
				return add(mw, &g)
			case o == nil || !manifest.SameScan(manifest.Compacted(o), manifest.Compacted(n)):
				return add(mw, n)
			}
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		for {
			e, err := scn.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if req.Hash && e.Type == manifest.TypeFile && !e.HasHash {
				if herr := scn.HashErr(e.Path); herr != nil {
					if err := sc.s.c.send(wire.THashErr, sc.id, wire.EncodeHashErr(e.Path, herr.Error())); err != nil {
						return err
					}
				}
			}
			keep(e)
			if err := add(mw, e); err != nil {
				return err
			}
		}
	}
	if err := mw.Close(); err != nil {
		return err
	}
	if full != nil && full.Close() == nil && sum.Close() == nil {
		end.Sum = fmt.Sprintf("%016x", sum.Sum())
		cache.commit(tmp, end.Sum)
	} else if base == nil {
		end.Sum = fmt.Sprintf("%016x", mw.Sum())
	}
	for _, p := range scn.Problems() {
		end.Problems = append(end.Problems, wire.ScanProblem{Path: p.Path, Err: p.Err.Error()})
	}
	b, err := wire.EncodeJSON(end)
	if err != nil {
		// Too many problems for one frame: keep the first ones.
		end.Problems = end.Problems[:1000]
		b, _ = wire.EncodeJSON(end)
	}
	return sc.s.c.send(wire.TScanEnd, sc.id, b)
}
