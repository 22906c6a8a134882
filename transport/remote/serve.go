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
			defer func() {
				// A panic here would end the whole daemon, not only
				// this connection: end the connection.
				if r := recover(); r != nil {
					s.c.failAfterError(fmt.Errorf("internal error: scan: %v", r))
				}
			}()
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
	defer func() {
		// A panic here would end the whole daemon, not only this
		// connection: end the connection.
		if r := recover(); r != nil {
			s.c.failAfterError(fmt.Errorf("internal error: send: %v", r))
		}
	}()
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

// stream scans the served tree as req asks and sends it to the peer: as
// a diff against the last scan both ends kept when the peer names one,
// otherwise whole, followed by the scan's end.
func (sc *servedScan) stream(req wire.ScanRequest) error {
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
	scn, err := sc.s.local.Scan(sc.s.ctx, cfg)
	if err != nil {
		return err
	}
	defer scn.Close()
	out, err := sc.newScanOut(base != nil, cache)
	if err != nil {
		return err
	}
	defer out.discard()
	if base != nil {
		err = out.diff(base, scn)
	} else {
		err = out.all(scn, req.Hash)
	}
	if err != nil {
		return err
	}
	return out.end(scn, cache, base != nil)
}

// scanOut writes one served scan: to the peer, as a diff against the
// base both ends keep or compact, and, when the scan cache is on, to the
// full scan kept for the next time and the sum that names it.
type scanOut struct {
	sc        *servedScan
	mw        *manifest.Writer // to the peer
	full, sum *manifest.Writer // the kept scan (with inodes, for the xattr cache) and its compact sum
	tmp       *os.File         // where full goes
	last      time.Time        // the last flush to the peer
}

func (sc *servedScan) newScanOut(diff bool, cache *scanCache) (*scanOut, error) {
	o := &scanOut{sc: sc}
	var err error
	if diff {
		o.mw, err = manifest.NewDiffWriter(sc)
	} else {
		o.mw, err = manifest.NewCompactWriter(sc)
	}
	if err != nil {
		return nil, err
	}
	// The kept scan is full (with inodes, for the xattr cache); it is named
	// by the sum of its compact form, which is what the receiver rebuilds.
	if cache != nil {
		if o.tmp, o.full = cache.create(); o.tmp != nil {
			o.sum, _ = manifest.NewCompactWriter(io.Discard)
		}
	}
	o.last = time.Now()
	return o, nil
}

// discard removes the kept scan's temporary file, committed or not.
func (o *scanOut) discard() {
	if o.tmp != nil {
		o.tmp.Close()
		os.Remove(o.tmp.Name())
	}
}

// add sends e to the peer, flushing now and then so that the peer works
// on what is scanned while the rest comes.
func (o *scanOut) add(e *manifest.Entry) error {
	if err := o.mw.Add(e); err != nil {
		return err
	}
	if time.Since(o.last) > 50*time.Millisecond {
		if err := o.mw.Flush(); err != nil {
			return err
		}
		o.last = time.Now()
	}
	return nil
}

// keep adds e to the kept scan; the cache is an optimisation: a failure
// drops it, not the scan.
func (o *scanOut) keep(e *manifest.Entry) {
	if o.full != nil && (o.full.Add(e) != nil || o.sum.Add(e) != nil) {
		o.full = nil
	}
}

// diff sends what changed since base: new and changed entries, and the
// gone ones marked so.
func (o *scanOut) diff(base manifest.Iterator, scn tree.Scan) error {
	return manifest.Diff(base, scn, func(old, cur *manifest.Entry) error {
		if cur != nil {
			o.keep(cur)
		}
		switch {
		case cur == nil:
			g := *old
			g.Gone = true
			return o.add(&g)
		case old == nil || !manifest.SameScan(manifest.Compacted(old), manifest.Compacted(cur)):
			return o.add(cur)
		}
		return nil
	})
}

// all sends every entry; in a hashing scan, why a file has no hash goes
// before it.
func (o *scanOut) all(scn tree.Scan, hash bool) error {
	for {
		e, err := scn.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if hash && e.Type == manifest.TypeFile && !e.HasHash {
			if herr := scn.HashErr(e.Path); herr != nil {
				if err := o.sc.s.c.send(wire.THashErr, o.sc.id, wire.EncodeHashErr(e.Path, herr.Error())); err != nil {
					return err
				}
			}
		}
		o.keep(e)
		if err := o.add(e); err != nil {
			return err
		}
	}
}

// end closes the stream to the peer, commits the kept scan, and sends the
// scan's end: the sum that names it (the base of the next diff) and the
// problems met.
func (o *scanOut) end(scn tree.Scan, cache *scanCache, diff bool) error {
	if err := o.mw.Close(); err != nil {
		return err
	}
	end := wire.ScanEnd{}
	if o.full != nil && o.full.Close() == nil && o.sum.Close() == nil {
		end.Sum = fmt.Sprintf("%016x", o.sum.Sum())
		cache.commit(o.tmp, end.Sum)
	} else if !diff {
		end.Sum = fmt.Sprintf("%016x", o.mw.Sum())
	}
	for _, p := range scn.Problems() {
		end.Problems = append(end.Problems, wire.ScanProblem{Path: p.Path, Err: p.Err.Error()})
	}
	b, err := wire.EncodeJSON(end)
	for _, n := range []int{1000, 100, 10, 0} {
		if err == nil {
			break
		}
		// Too many problems for one frame, or too long ones (a path
		// takes up to 32 KiB, twice): keep the first ones.
		end.Problems = end.Problems[:min(len(end.Problems), n)]
		b, err = wire.EncodeJSON(end)
	}
	return o.sc.s.c.send(wire.TScanEnd, o.sc.id, b)
}
