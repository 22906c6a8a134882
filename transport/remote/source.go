package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/wire"
)

// scanWindow is how many scan bytes the receiving end buffers at most.
const scanWindow = 8 << 20

// Source is the tree the peer serves, as the source of a pass run here or
// one side of a verification. It implements engine.Source and verify.Side.
type Source struct {
	c    *Conn
	root string // as the peer names it
}

// Source returns the tree the peer serves on c (see OpenSource).
func (c *Conn) Source(root string) *Source { return &Source{c: c, root: root} }

// String names the source: "host:path" or "msync://host/module/path".
func (s *Source) String() string { return s.c.name }

// Join names one path of the source in messages.
func (s *Source) Join(rel string) string { return tree.JoinName(s.c.name, rel) }

// WireBytes returns the bytes that crossed the connection so far.
func (s *Source) WireBytes() int64 { return s.c.WireBytes() }

// Scan asks the peer to scan its tree and streams the entries back.
func (s *Source) Scan(ctx context.Context, cfg tree.ScanConfig) (tree.Scan, error) {
	c := s.c
	id := c.newID()
	st := &scanStream{c: c, id: id, hashErrs: map[string]string{}, granted: scanWindow}
	st.cond = sync.NewCond(&st.mu)
	sreq := wire.ScanRequest{Exclude: cfg.Exclude, Xattrs: cfg.Xattrs, Hash: cfg.Hash, Workers: cfg.Workers}
	if cfg.Cache != "" && !cfg.Hash && c.features&wire.FeatScanDiff != 0 {
		st.cache = cfg.Cache
		if path, sum := newestKept(cfg.Cache); path != "" {
			st.basePath, sreq.Base = path, sum
		}
	}
	c.mu.Lock()
	if c.Err() != nil {
		c.mu.Unlock()
		return nil, c.closedErr()
	}
	c.scans[id] = st
	c.mu.Unlock()
	req, err := wire.EncodeJSON(sreq)
	if err != nil {
		return nil, err
	}
	if err := c.send(wire.TScanReq, id, req); err != nil {
		return nil, err
	}
	if err := c.send(wire.TCredit, id, wire.EncodeUvarints(scanWindow)); err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			st.abort(ctx.Err())
		case <-st.finished():
		}
	}()
	return st, nil
}

// scanStream receives one scan.
type scanStream struct {
	c  *Conn
	id uint32

	mu       sync.Mutex
	cond     *sync.Cond
	chunks   [][]byte
	ended    bool
	end      wire.ScanEnd
	err      error
	granted  int64 // credit given and not yet used by the peer
	consumed int64 // bytes read since the last credit
	hashErrs map[string]string
	fin      chan struct{}
	finOnce  sync.Once

	rd    *manifest.Reader
	it    manifest.Iterator // rd, or rd patched onto the kept base
	base  *manifest.FileReader
	check treeCheck
	eof   bool

	cache    string           // where scans are kept: CACHE.SUM ("": nowhere)
	basePath string           // the kept scan named as the base of a diff
	tmp      *os.File         // the new full scan being kept
	keep     *manifest.Writer // on tmp
}

// newestKept finds the last scan kept at prefix: PREFIX.SUM, named by its
// sum so that it need not be read to be named.
func newestKept(prefix string) (path, sum string) {
	ms, _ := filepath.Glob(prefix + ".*")
	var newest int64
	for _, m := range ms {
		sfx := strings.TrimPrefix(m, prefix+".")
		fi, err := os.Stat(m)
		if err != nil || !validSum(sfx) || !allLinks(m) {
			continue
		}
		if t := fi.ModTime().UnixNano(); path == "" || t > newest {
			path, sum, newest = m, sfx, t
		}
	}
	return path, sum
}

// allLinks reports whether the kept scan at path tells the inodes of
// hard-linked symlinks and specials (manifest.FlagLinks): one kept by an
// older msync cannot be the base of a diff that leaves them out.
func allLinks(path string) bool {
	r, err := manifest.Open(path)
	if err != nil {
		return false
	}
	defer r.Close()
	return r.AllLinks()
}

func (s *scanStream) finished() chan struct{} {
	s.finOnce.Do(func() { s.fin = make(chan struct{}) })
	return s.fin
}

func (s *scanStream) dispatch(f wire.Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch f.Type {
	case wire.TScanData:
		if s.ended {
			return fmt.Errorf("%w: scan data after its end", wire.ErrProtocol)
		}
		if int64(len(f.Payload)) > s.granted {
			return fmt.Errorf("%w: the peer sent %d scan bytes with %d granted", wire.ErrProtocol, len(f.Payload), s.granted)
		}
		s.granted -= int64(len(f.Payload))
		s.chunks = append(s.chunks, append([]byte(nil), f.Payload...))
	case wire.THashErr:
		path, msg, err := wire.DecodeHashErr(f.Payload)
		if err != nil {
			return err
		}
		if len(s.hashErrs) > 1<<20 {
			return fmt.Errorf("%w: too many hash errors", wire.ErrProtocol)
		}
		s.hashErrs[path] = msg
	case wire.TScanEnd:
		if s.ended {
			return fmt.Errorf("%w: second scan end", wire.ErrProtocol)
		}
		if err := wire.DecodeJSON(f.Payload, &s.end); err != nil {
			return err
		}
		s.ended = true
	}
	s.cond.Broadcast()
	return nil
}

func (s *scanStream) abort(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Read hands the manifest reader the scan bytes as they arrive, granting
// the peer more credit as they are consumed.
func (s *scanStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	for len(s.chunks) == 0 && !s.ended && s.err == nil {
		s.cond.Wait()
	}
	if s.err != nil && len(s.chunks) == 0 {
		err := s.err
		s.mu.Unlock()
		if errors.Is(err, io.EOF) || errors.Is(err, ErrClosed) {
			err = s.c.closedErr()
		}
		return 0, err
	}
	if len(s.chunks) == 0 {
		s.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	if n == len(s.chunks[0]) {
		s.chunks[0] = nil
		s.chunks = s.chunks[1:]
	} else {
		s.chunks[0] = s.chunks[0][n:]
	}
	s.consumed += int64(n)
	var credit int64
	if s.consumed >= scanWindow/4 && !s.ended {
		credit, s.consumed = s.consumed, 0
		s.granted += credit
	}
	s.mu.Unlock()
	if credit > 0 {
		if err := s.c.send(wire.TCredit, s.id, wire.EncodeUvarints(uint64(credit))); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Next returns the next entry of the scan, checked to form a tree.
func (s *scanStream) Next() (*manifest.Entry, error) {
	if s.eof {
		return nil, io.EOF
	}
	if s.rd == nil {
		rd, err := manifest.NewReader(s)
		if err != nil {
			return nil, s.wrap(err)
		}
		s.rd, s.it = rd, rd
		if rd.Diff() {
			if s.basePath == "" {
				return nil, s.wrap(fmt.Errorf("%w: a diff scan that was not asked for", wire.ErrProtocol))
			}
			b, err := manifest.Open(s.basePath)
			if err != nil {
				return nil, s.wrap(fmt.Errorf("kept scan: %w", err))
			}
			s.base = b
			s.it = manifest.Patch(b, rd)
		}
		if s.cache != "" {
			if f, err := os.CreateTemp(filepath.Dir(s.cache), ".scan-*"); err == nil {
				if w, err := manifest.NewCompactWriter(f); err == nil {
					s.tmp, s.keep = f, w
				} else {
					f.Close()
					os.Remove(f.Name())
				}
			}
		}
	}
	e, err := s.it.Next()
	if err == io.EOF {
		s.mu.Lock()
		for !s.ended && s.err == nil {
			s.cond.Wait()
		}
		end, serr := s.end, s.err
		s.mu.Unlock()
		if serr != nil {
			return nil, s.wrap(serr)
		}
		if end.Err != "" {
			return nil, &RemoteError{Peer: s.c.name, Msg: end.Err}
		}
		if err := s.commitKept(end.Sum); err != nil {
			return nil, s.wrap(err)
		}
		s.eof = true
		s.close()
		return nil, io.EOF
	}
	if err != nil {
		if s.base != nil {
			os.Remove(s.basePath) // the next scan comes whole
		}
		return nil, s.wrap(err)
	}
	if err := s.check.add(e); err != nil {
		err = s.wrap(err)
		s.c.failAfterError(err)
		return nil, err
	}
	if s.keep != nil && s.keep.Add(e) != nil {
		s.dropKept()
	}
	return e, nil
}

// commitKept keeps the scan just received as the base of the next one,
// after checking it is the scan the peer made: a diff patched onto the
// wrong base fails here.
func (s *scanStream) commitKept(sum string) error {
	if s.keep == nil {
		if s.rd.Diff() {
			return fmt.Errorf("%w: diff scan could not be checked", wire.ErrProtocol)
		}
		return nil
	}
	defer s.dropKept()
	if err := s.keep.Close(); err != nil {
		return nil
	}
	if got := fmt.Sprintf("%016x", s.keep.Sum()); got != sum {
		if s.rd.Diff() {
			os.Remove(s.basePath)
			return fmt.Errorf("%w: the scan rebuilt from a diff has sum %s, the peer's %s", wire.ErrProtocol, got, sum)
		}
		return nil // an old peer that sends no sum: keep nothing
	}
	// Not fsynced: a torn kept scan fails its checksum; the next scan is
	// then sent whole.
	kept := s.cache + "." + sum
	if s.tmp.Close() == nil && os.Rename(s.tmp.Name(), kept) == nil {
		s.tmp, s.keep = nil, nil
		old, _ := filepath.Glob(s.cache + ".*")
		for _, o := range old {
			if o != kept && validSum(strings.TrimPrefix(o, s.cache+".")) {
				os.Remove(o)
			}
		}
	}
	return nil
}

func (s *scanStream) dropKept() {
	if s.tmp != nil {
		s.tmp.Close()
		os.Remove(s.tmp.Name())
		s.tmp, s.keep = nil, nil
	}
}

func (s *scanStream) wrap(err error) error {
	var re *RemoteError
	if errors.As(err, &re) {
		return err
	}
	if errors.Is(err, ErrClosed) {
		return err
	}
	if errors.Is(err, manifest.ErrCorrupt) {
		err = fmt.Errorf("%w: %w", wire.ErrProtocol, err)
	}
	return fmt.Errorf("scan of %s: %w", s.c.name, err)
}

// Problems returns what the peer could not scan.
func (s *scanStream) Problems() []scan.Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []scan.Problem
	for _, p := range s.end.Problems {
		out = append(out, scan.Problem{Path: p.Path, Err: errors.New(p.Err)})
	}
	return out
}

// HashErr says why the peer could not hash path.
func (s *scanStream) HashErr(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg, ok := s.hashErrs[path]; ok {
		return errors.New(msg)
	}
	return nil
}

func (s *scanStream) close() {
	s.c.mu.Lock()
	delete(s.c.scans, s.id)
	s.c.mu.Unlock()
	close(s.finished())
}

// Close abandons the scan. The peer may still send its remaining data,
// which is then refused: callers close scans when the pass ends.
func (s *scanStream) Close() {
	if s.rd != nil {
		s.rd.Close()
	}
	if s.base != nil {
		s.base.Close()
	}
	s.dropKept()
	if !s.eof {
		s.eof = true
		s.abort(ErrClosed)
		// Keep the id registered so that late frames are absorbed; the
		// connection ends with the pass.
		select {
		case <-s.finished():
		default:
			close(s.finished())
		}
	}
}

// treeCheck refuses a scan whose entries do not form a tree
// (manifest.TreeCheck). With the manifest reader's checks (valid relative
// paths, strict order), this keeps a hostile peer from placing anything
// outside the destination or beneath a symlink.
type treeCheck struct{ manifest.TreeCheck }

func (t *treeCheck) add(e *manifest.Entry) error {
	if err := t.Add(e); err != nil {
		return fmt.Errorf("%w: %w", wire.ErrProtocol, err)
	}
	return nil
}

// Fetch asks the peer for one file.
func (s *Source) Fetch(ctx context.Context, req *send.Request) (tree.Reply, error) {
	c := s.c
	id := c.newID()
	r := newFetchReply(ctx, c, req.Path)
	c.mu.Lock()
	if c.Err() != nil {
		c.mu.Unlock()
		return nil, c.closedErr()
	}
	c.fetches[id] = r
	c.mu.Unlock()
	if req.Mode == send.Delta {
		sig, err := req.Sig.MarshalBinary()
		if err != nil {
			return nil, err
		}
		// A signature goes out whole, then its request, never mixed with
		// another's: the peer holds at most one unclaimed at a time.
		c.sigMu.Lock()
		defer c.sigMu.Unlock()
		for len(sig) > 0 {
			n := min(len(sig), wire.ChunkSize)
			if err := c.send(wire.TSig, id, sig[:n]); err != nil {
				return nil, err
			}
			sig = sig[n:]
		}
	}
	if err := c.send(wire.TFetch, id, wire.EncodeFetch(req)); err != nil {
		return nil, err
	}
	return r, nil
}

// fetchReply receives one file's operations.
type fetchReply struct {
	c        *Conn
	ctx      context.Context
	path     string
	ch       chan []byte
	cur      []byte // what Read has not returned yet, of buf
	buf      []byte
	end      []byte
	once     sync.Once // ch is closed by the connection's reader alone, at the end
	gone     chan struct{}
	goneOnce sync.Once
	// aborted is closed when the connection fails (from whichever
	// goroutine failed it): never ch, which the reader may still be
	// sending on, and never end, which it may still be writing.
	aborted   chan struct{}
	abortOnce sync.Once
}

func newFetchReply(ctx context.Context, c *Conn, path string) *fetchReply {
	return &fetchReply{c: c, ctx: ctx, path: path, ch: make(chan []byte, 8), gone: make(chan struct{}), aborted: make(chan struct{})}
}

func (r *fetchReply) dispatch(c *Conn, f wire.Frame) error {
	switch f.Type {
	case wire.TEnd:
		r.end = append([]byte(nil), f.Payload...)
		r.once.Do(func() { close(r.ch) })
		return nil
	case wire.TDataZ:
		p, err := c.zdec.DecodeAll(f.Payload, getChunk())
		if err != nil {
			return fmt.Errorf("%w: compressed data for %q: %v", wire.ErrProtocol, r.path, err)
		}
		if len(p) > wire.MaxPayload {
			return fmt.Errorf("%w: compressed chunk for %q expands beyond the frame limit", wire.ErrProtocol, r.path)
		}
		r.deliver(c, p)
	default:
		if len(f.Payload) >= directWrite && len(f.Payload) <= wire.ChunkSize {
			r.deliver(c, append(getChunk(), f.Payload...))
		} else {
			r.deliver(c, append([]byte(nil), f.Payload...))
		}
	}
	return nil
}

// deliver waits while the reply's reader is behind: the connection's
// reader stops meanwhile, which is safe because Source does not fetch
// ahead (its requests come from the workers that read them at once; see
// TestSourceDoesNotFetchAhead).
func (r *fetchReply) deliver(c *Conn, p []byte) {
	select {
	case r.ch <- p:
	case <-c.done:
	case <-r.gone:
	case <-r.aborted:
	}
}

func (r *fetchReply) abort() {
	r.abortOnce.Do(func() { close(r.aborted) })
}

// next returns the reply's next chunk; ok is false at its end (end is then
// set). After the connection failed, what had already arrived is still
// returned, then the connection's error.
func (r *fetchReply) next() (p []byte, ok bool, err error) {
	select {
	case p, ok = <-r.ch:
		return p, ok, nil
	case <-r.ctx.Done():
		r.abandon()
		return nil, false, r.ctx.Err()
	case <-r.aborted:
		select {
		case p, ok = <-r.ch:
			return p, ok, nil
		default:
			return nil, false, r.c.closedErr()
		}
	}
}

// abandon lets the rest of the reply be dropped as it arrives.
func (r *fetchReply) abandon() {
	r.goneOnce.Do(func() { close(r.gone) })
}

func (r *fetchReply) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		buf, ok, err := r.next()
		if err != nil {
			return 0, err
		}
		r.buf, r.cur = buf, buf
		if !ok {
			if r.end == nil {
				return 0, r.c.closedErr()
			}
			return 0, io.EOF
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	if len(r.cur) == 0 {
		putChunk(r.buf) // by its capacity: only chunks of chunkPool go back
		r.cur, r.buf = nil, nil
	}
	return n, nil
}

// Result drains what is left of the reply and decodes its end.
func (r *fetchReply) Result() (*send.Result, error) {
	for {
		p, ok, err := r.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		putChunk(p)
	}
	if r.end == nil {
		return nil, r.c.closedErr()
	}
	return wire.DecodeEnd(r.end, r.path)
}

func (r *fetchReply) Close() { r.Result() }
