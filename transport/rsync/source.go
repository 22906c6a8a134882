package rsync

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/delta"
	"github.com/msync/msync/internal/md4"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
	"golang.org/x/sys/unix"
)

// ErrNoHash says the connection was not opened for a verification (see
// Endpoint.Checksum), so its file list carries no sums.
var ErrNoHash = errors.New("this rsync connection was not opened with --checksum")

// Digest names the content digest of a hashing scan: rsync's MD4 (as
// tree.ScanConfig.Digest), which is all a stock rsync sender computes.
func (c *Client) Digest() string { return scan.DigestMD4 }

// FileLinksOnly reports that the file lists of protocol 27 carry the
// device and inode of regular files only: hard links between symlinks,
// fifos, sockets or devices do not cross (rsync sends them from protocol
// 28 on).
func (c *Client) FileLinksOnly() bool { return true }

// Scan sends the exclude patterns and receives the sender's file list. One
// connection gives one file list.
func (c *Client) Scan(ctx context.Context, cfg tree.ScanConfig) (tree.Scan, error) {
	if cfg.Hash && (!c.fields.checksum || cfg.Digest != scan.DigestMD4) {
		return nil, fmt.Errorf("%s: %w", c.name, ErrNoHash)
	}
	c.mu.Lock()
	if c.scanned {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: the rsync connection already sent its file list", c.name)
	}
	c.scanned, c.listing = true, true
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.closer() })
	defer stop()
	if !c.server {
		c.wmu.Lock()
		err := c.enc.filterRules(cfg.Exclude)
		if err == nil {
			err = c.enc.w.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			c.broken(err)
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	fl, ioErr, err := readFileList(c.dec, c.fields, c.root)
	if err == nil {
		c.mu.Lock()
		c.ioError |= ioErr
		c.mu.Unlock()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		c.broken(err)
		c.mu.Lock()
		said := c.lastErr
		c.mu.Unlock()
		if said != "" {
			// A sender that refuses the request says why, then hangs up.
			return nil, fmt.Errorf("%s: receiving the file list: %w (the sender said: %s)", c.name, err, said)
		}
		return nil, fmt.Errorf("%s: receiving the file list: %w", c.name, err)
	}
	c.mu.Lock()
	c.listing = false
	ioError, msgs := c.ioError, c.msgs
	if c.msgsLost > 0 {
		msgs = append(msgs[:len(msgs):len(msgs)], fmt.Sprintf("%d more error messages not kept", c.msgsLost))
	}
	c.mu.Unlock()
	s := &listScan{entries: fl.entries}
	// rsync's I/O error flag: only paths that vanished while listed (a
	// directory renamed away) is a source that changes, not a failure.
	vanished := ioError == ioErrVanished
	for _, m := range msgs {
		err := fmt.Errorf("rsync sender: %s", m)
		if vanished && strings.Contains(m, " has vanished: ") {
			err = fmt.Errorf("rsync sender: %s: %w", m, scan.ErrVanished)
		}
		s.problems = append(s.problems, scan.Problem{Path: "", Err: err})
	}
	if ioError != 0 {
		// Some directory could not be read completely and rsync does not
		// say which: no path of this list may be taken as deleted.
		for _, e := range fl.entries {
			if e.Type == manifest.TypeDir {
				e.Incomplete = true
			}
		}
		switch {
		case len(s.problems) > 0:
		case vanished:
			s.problems = append(s.problems, scan.Problem{Path: "", Err: fmt.Errorf("rsync sender: %w: paths disappeared while it listed them (nothing is deleted in this pass)", scan.ErrVanished)})
		default:
			s.problems = append(s.problems, scan.Problem{Path: "", Err: fmt.Errorf("rsync sender: I/O error %#x while listing (nothing is deleted in this pass)", ioError)})
		}
	}
	c.list = fl
	go c.readLoop()
	go c.flusher()
	return s, nil
}

// rsync's I/O error flags (IOERR_GENERAL, IOERR_VANISHED).
const (
	ioErrGeneral  = 1
	ioErrVanished = 2
)

// listScan serves a received file list as a scan.
type listScan struct {
	entries  []*manifest.Entry
	i        int
	problems []scan.Problem
}

func (s *listScan) Next() (*manifest.Entry, error) {
	if s.i >= len(s.entries) {
		return nil, io.EOF
	}
	e := s.entries[s.i]
	s.entries[s.i] = nil
	s.i++
	return e, nil
}
func (s *listScan) Problems() []scan.Problem  { return s.problems }
func (s *listScan) HashErr(path string) error { return nil }
func (s *listScan) Close()                    {}

// reply is one requested file as it arrives: delta operations, then the
// outcome. A small file is collected whole before the reader hands it over,
// so the reader never waits for the worker that asked for it; a larger one
// streams once it outgrows replyBuffer: through a pipe when its worker is
// reading it already, else through a spill (spill.go), so that the
// connection's reader never waits for a reply nobody reads yet while the
// workers wait for later ones.
type reply struct {
	ndx       int32
	path      string
	phase     int         // end-of-phase markers sent before the request
	head      sumHead     // the block sums sent; zero for a whole file
	basis     io.ReaderAt // the old copy they were computed from
	basisSize int64
	spillDir  string          // where a spill's temp file goes ("": $TMPDIR)
	ready     chan struct{}   // list, or st and ow when streaming, or src are set
	list      *delta.OpList   // collected operations, until streaming starts
	reading   atomic.Bool     // a worker asked for the operations (Ops)
	st        stream          // the operations once streaming
	ow        *delta.OpWriter // encodes operations into st
	src       io.Reader       // what Read reads: the stream, the encoded list or an error
	done      chan struct{}
	res       *send.Result
	once      sync.Once
	// mu orders the reader's additions (copyOp, literal, end) with finish
	// and release, which another goroutine may call at any time (a broken
	// connection fails every queued reply, the one being read included):
	// once finished, a reply takes no more data and its channels are
	// closed once.
	mu       sync.Mutex
	finished bool
	readyOff bool // ready is closed
}

// errFinished is what the reader's additions to a finished reply return:
// the rest of its data is read and dropped.
var errFinished = errors.New("the request was already answered or abandoned")

// replyBuffer is how much data of one answer is collected before
// streaming.
const replyBuffer = 256 << 10

// opLists recycles the operation lists of answered replies.
var opLists = sync.Pool{New: func() any { return new(delta.OpList) }}

func newReply(ndx int32, path string) *reply {
	return &reply{ndx: ndx, path: path, ready: make(chan struct{}), done: make(chan struct{}),
		list: opLists.Get().(*delta.OpList)}
}

// Ops hands the worker the reply's operations: the collected list as it
// is, or a decoder of the stream.
func (r *reply) Ops(basisSize int64) delta.Ops {
	r.reading.Store(true)
	<-r.ready
	if r.st == nil && r.res.Status == send.OK {
		return r.list
	}
	return delta.NewOpReader(r, basisSize)
}

func (r *reply) Read(p []byte) (int, error) {
	r.reading.Store(true)
	<-r.ready
	if r.src == nil {
		// Asked to read a collected list: encode it.
		var b bytes.Buffer
		if err := r.list.WriteTo(delta.NewOpWriter(&b)); err != nil {
			return 0, err
		}
		r.src = &b
	}
	return r.src.Read(p)
}

// The reader adds operations with copyOp, literal and end. Writes to the
// pipe happen outside mu: they wait for the worker, and a finish meanwhile
// closes the pipe, which ends them.

func (r *reply) copyOp(off, n int64) error {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return errFinished
	}
	if ow := r.ow; ow != nil {
		r.mu.Unlock()
		return ow.Copy(off, n)
	}
	r.list.Copy(off, n)
	r.mu.Unlock()
	return nil
}

func (r *reply) literal(b []byte) error {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return errFinished
	}
	if r.ow == nil && r.list.DataLen()+len(b) > replyBuffer {
		// Too big to collect: the worker reads it as it comes.
		st, err := r.newStream()
		if err != nil {
			r.mu.Unlock()
			return err
		}
		r.st = st
		r.src = r.st
		r.ow = delta.NewOpWriter(r.st)
		r.closeReady()
		list, ow := r.list, r.ow
		r.list = nil
		r.mu.Unlock()
		err = list.WriteTo(ow)
		list.Reset()
		opLists.Put(list)
		if err != nil {
			return err
		}
		return ow.Literal(b)
	}
	if ow := r.ow; ow != nil {
		r.mu.Unlock()
		return ow.Literal(b)
	}
	r.list.Literal(b)
	r.mu.Unlock()
	return nil
}

func (r *reply) end(size int64, hash uint64) error {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return errFinished
	}
	if ow := r.ow; ow != nil {
		r.mu.Unlock()
		return ow.End(size, hash)
	}
	r.list.End(size, hash)
	r.mu.Unlock()
	return nil
}

// stream carries a large reply's encoded operations from the connection's
// reader to the worker.
type stream interface {
	io.Reader
	io.Writer
	CloseRead(err error)  // the worker abandons the rest
	CloseWrite(err error) // the end: nil, or why the reply failed
}

// newStream picks how a reply outgrowing replyBuffer streams: a reply its
// worker reads already goes through a pipe (the reader waits for that
// worker, which reads until the reply's end); one nobody reads yet goes to
// a spill, since its worker may be waiting for a later reply. Without a
// temp file for it, the reply fails rather than risk that wait. r.mu is
// held.
func (r *reply) newStream() (stream, error) {
	if !r.reading.Load() {
		sp, err := newSpill(r.spillDir)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", r.path, err)
		}
		return sp, nil
	}
	pr, pw := io.Pipe()
	return pipeStream{pr, pw}, nil
}

type pipeStream struct {
	*io.PipeReader
	pw *io.PipeWriter
}

func (p pipeStream) Write(b []byte) (int, error) { return p.pw.Write(b) }
func (p pipeStream) CloseRead(err error)         { p.PipeReader.CloseWithError(err) }
func (p pipeStream) CloseWrite(err error)        { p.pw.CloseWithError(err) }

// closeReady closes ready once; r.mu is held.
func (r *reply) closeReady() {
	if !r.readyOff {
		r.readyOff = true
		close(r.ready)
	}
}

func (r *reply) Result() (*send.Result, error) {
	select {
	case <-r.ready:
		if r.st != nil {
			// Whatever the receiver did not read is not needed any more.
			r.st.CloseRead(io.ErrClosedPipe)
		}
	case <-r.done:
	}
	<-r.done
	r.release()
	return r.res, nil
}

// release gives the operation list back once nothing reads it.
func (r *reply) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.list != nil {
		r.list.Reset()
		opLists.Put(r.list)
		r.list = nil
	}
}

func (r *reply) Close() { r.Result() }

func (r *reply) finish(res *send.Result) {
	r.once.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.finished = true
		r.res = res
		switch {
		case r.st != nil && res.Status == send.OK:
			r.st.CloseWrite(nil)
		case r.st != nil:
			r.st.CloseWrite(res.Err)
		case res.Status == send.OK:
			r.closeReady()
		default:
			r.src = errReader{res.Err}
			r.closeReady()
		}
		close(r.done)
	})
}

func (r *reply) fail(err error) { r.finish(&send.Result{Status: send.Failed, Err: err}) }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Fetch asks the sender for one file of the list. rsync answers requests in
// the order they were made, so many can be in flight. With an old copy
// (req.Basis) the request carries its block sums and the answer is a
// delta; otherwise the whole file comes.
func (c *Client) Fetch(ctx context.Context, req *send.Request) (tree.Reply, error) {
	fl := c.list
	if fl == nil {
		return nil, fmt.Errorf("%s: fetch before the file list", c.name)
	}
	ndx, ok := fl.index[req.Path]
	if !ok {
		return nil, fmt.Errorf("%s: %q is not a file of the rsync file list", c.name, req.Path)
	}
	r := newReply(ndx, req.Path)
	r.spillDir = c.spill
	var sums []byte
	if req.Mode == send.Delta && req.Basis != nil && req.BasisSize > 0 {
		// Block sums of the old copy, computed before the lock so that
		// other requests are not held up.
		var buf bytes.Buffer
		enc := &encoder{w: bufio.NewWriter(&buf)}
		h, err := enc.writeSums(req.Basis, req.BasisSize, c.seed)
		if err == nil {
			err = enc.w.Flush()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", req.Path, err)
		}
		sums, r.head, r.basis, r.basisSize = buf.Bytes(), h, req.Basis, req.BasisSize
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	if c.ended {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %q not requested: the run with the rsync sender was ended when it stopped answering", c.name, req.Path)
	}
	r.phase = c.markers
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	// The index, then the block sums of the old copy, or a sum head with
	// no blocks: send it all. The flusher sends requests made meanwhile
	// together.
	c.enc.int32(ndx)
	if sums != nil {
		c.enc.w.Write(sums)
	} else {
		for range 4 {
			c.enc.int32(0)
		}
	}
	if c.unflushed.Add(1) >= flushBatch {
		c.kickFlusher()
	} else {
		c.maybeKick()
	}
	return r, nil
}

// Requests are small (20 bytes) and a write to a socket costs as much as
// a file: they go out in batches, as soon as the sender could run short.
const (
	flushBatch = 16 // requests that make a batch
	flushLow   = 4  // requests the sender has in hand below which a batch goes at once
)

func (c *Client) kickFlusher() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// maybeKick sends buffered requests when the sender is running out.
func (c *Client) maybeKick() {
	if c.unflushed.Load() > 0 && c.sent.Load()-c.answered.Load() < flushLow {
		c.kickFlusher()
	}
}

// flusher writes buffered requests out when kicked, and every millisecond
// whatever is left.
func (c *Client) flusher() {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	w := time.NewTicker(idleProbe / 4)
	defer w.Stop()
	var seen int64
	quiet := time.Now()
	for {
		select {
		case <-c.kick:
		case <-t.C:
			if c.unflushed.Load() == 0 {
				continue
			}
		case now := <-w.C:
			// Quiet is the reader waiting for the sender between answers,
			// not one held up by the worker writing an answer.
			if n := c.read.Load(); n != seen || c.receiving() {
				seen, quiet = n, now
			} else if c.watch(now.Sub(quiet)) {
				quiet = now
			}
			continue
		case <-c.finished:
			return
		}
		c.wmu.Lock()
		n := c.unflushed.Swap(0)
		err := c.enc.w.Flush()
		c.wmu.Unlock()
		c.sent.Add(n)
		if err != nil {
			c.broken(err)
			return
		}
	}
}

// readLoop receives the sender's answers, in request order, until the
// connection ends or the run's totals arrive.
func (c *Client) readLoop() {
	defer close(c.finished)
	err := c.receive()
	if err != nil {
		c.broken(err)
	}
}

// receive reads the sender's answers in the order of the requests until
// the run's last end-of-phase marker; a request the sender skipped is
// failed when a later answer or marker shows it.
func (c *Client) receive() error {
	buf := make([]byte, 64<<10)
	phase := 0
	for {
		ndx, err := c.dec.int32()
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if ndx == -1 {
			phase++
			if done, err := c.endPhase(phase); done || err != nil {
				return err
			}
			continue
		}
		// Requests the sender skipped (it could not open them) get no answer.
		r := c.skipPending(func(r *reply) bool { return r.ndx != ndx })
		if r == nil {
			return protoErr("the sender answered index %d, which was not asked for", ndx)
		}
		c.mu.Lock()
		c.current = r
		c.mu.Unlock()
		if err := c.receiveFile(r, buf); err != nil {
			return err
		}
	}
}

// endPhase deals with the sender's end-of-phase marker: it has dealt with
// every request made before it, so those still waiting were skipped. After
// the second, the run is over (done), with the sender's totals from a
// stock server.
func (c *Client) endPhase(phase int) (done bool, err error) {
	c.skipPending(func(r *reply) bool { return r.phase < phase })
	if phase == 2 && c.server {
		return true, nil // a client sender sends no totals
	}
	c.phase <- struct{}{}
	if phase < 2 {
		return false, nil
	}
	var st Stats
	if st.Written, err = c.dec.longint(); err == nil {
		if st.Read, err = c.dec.longint(); err == nil {
			st.Size, err = c.dec.longint()
		}
	}
	c.stats = st
	return true, err
}

// receiveFile reads the sender's answer to r (the sum head it echoes, the
// tokens that rebuild the file, the MD4 of the whole) and finishes r. An
// error is the connection's; what is wrong with the file alone fails r.
func (c *Client) receiveFile(r *reply, buf []byte) error {
	d := c.dec
	var head [4]int32
	for i := range head {
		var err error
		if head[i], err = d.int32(); err != nil {
			return err
		}
	}
	if head != [4]int32{r.head.count, r.head.blen, r.head.s2len, r.head.rem} {
		return protoErr("%q: the sender echoed sum head %v for %+v", r.path, head, r.head)
	}
	a := newAnswer(r, c.seed)
	for {
		tok, err := d.int32()
		if err != nil {
			return err
		}
		if tok == 0 {
			break
		}
		if tok < 0 {
			if err := a.block(-(tok + 1)); err != nil {
				return err
			}
			continue
		}
		if tok > maxToken {
			return protoErr("%q: data token of %d bytes", r.path, tok)
		}
		if err := a.data(d.r, int(tok), buf); err != nil {
			return err
		}
	}
	var sum [md4.Size]byte
	if _, err := io.ReadFull(d.r, sum[:]); err != nil {
		return err
	}
	c.mu.Lock()
	if len(c.queue) > 0 && c.queue[0] == r {
		c.queue = c.queue[1:]
	}
	c.current = nil
	c.mu.Unlock()
	c.answered.Add(1)
	c.maybeKick()
	switch {
	case !bytes.Equal(sum[:], a.h.Sum(nil)):
		r.fail(fmt.Errorf("%s: %q: rsync's MD4 of the data does not match the data received", c.name, r.path))
	case a.werr != nil:
		r.fail(a.werr)
	default:
		if err := r.end(a.n, a.x.Sum64()); err != nil {
			r.fail(err)
			return nil
		}
		r.finish(&send.Result{Status: send.OK, Stats: delta.Stats{Size: a.n, Literal: a.n - a.matched, Matched: a.matched, Hash: a.x.Sum64()}})
	}
	return nil
}

// answer is one file's answer being received: its sums so far and what
// the reply took of it.
type answer struct {
	r          *reply
	h          hash.Hash      // rsync's MD4, seeded
	x          *xxhash.Digest // msync's hash of the rebuilt file
	win        *window        // the old copy, read in large pieces
	n, matched int64
	werr       error // the receiver stopped reading; keep draining the wire
}

func newAnswer(r *reply, seed int32) *answer {
	a := &answer{r: r, h: md4.New(), x: xxhash.New()}
	a.h.Write([]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	return a
}

// block takes block k of the old copy.
func (a *answer) block(k int32) error {
	r := a.r
	if k >= r.head.count {
		return protoErr("%q: block reference %d of %d", r.path, k, r.head.count)
	}
	off, l := r.head.blockAt(k)
	if a.win == nil {
		a.win = newWindow(r.basis, r.basisSize)
	}
	// Read under the reply's lock, and not once it is finished: its
	// worker closes the old copy as soon as it has the result, which a
	// failure from another goroutine gives it.
	r.mu.Lock()
	var b []byte
	err := errFinished
	if !r.finished {
		b, err = a.win.at(off, l)
	}
	r.mu.Unlock()
	if err != nil {
		if a.werr == nil {
			a.werr = fmt.Errorf("reading the old copy: %w", err)
		}
		b = make([]byte, l) // hashed as zeros: the sums cannot match
	}
	a.n += l
	a.matched += l
	a.h.Write(b)
	a.x.Write(b)
	if a.werr == nil {
		a.werr = r.copyOp(off, l)
	}
	return nil
}

// data takes a data token of size bytes from rd, through buf.
func (a *answer) data(rd io.Reader, size int, buf []byte) error {
	for left := size; left > 0; {
		b := buf[:min(left, len(buf))]
		if _, err := io.ReadFull(rd, b); err != nil {
			return err
		}
		left -= len(b)
		a.n += int64(len(b))
		a.h.Write(b)
		a.x.Write(b)
		if a.werr == nil {
			a.werr = a.r.literal(b)
		}
	}
	return nil
}

// A sender that cannot open a requested file sends nothing for it
// (protocol 27 has no "not sent" message): when every request went out and
// nothing came back for a while, the requests still waiting may never be
// answered. An end-of-phase marker finds out: the sender answers it after
// the requests before it, and those still waiting then were skipped.
// Protocol 27 has two markers; the first is free (requests go on in the
// redo phase), the second ends the run, so it waits much longer: then
// only the requests not yet made fail, and the next pass does them.
var (
	idleProbe = 2 * time.Second
	idleEnd   = 60 * time.Second
)

// receiving reports whether an answer is being received.
func (c *Client) receiving() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current != nil
}

// watch sends a marker when requests wait and the sender has been quiet
// for idle; it reports whether it sent one.
func (c *Client) watch(idle time.Duration) bool {
	if c.unflushed.Load() != 0 {
		return false
	}
	c.mu.Lock()
	waiting := len(c.queue) > 0 && !c.ended && c.err == nil
	c.mu.Unlock()
	if !waiting {
		return false
	}
	c.wmu.Lock()
	m := c.markers
	c.wmu.Unlock()
	switch {
	case m == 0 && idle >= idleProbe:
		fmt.Fprintf(c.log, "%s: the rsync sender has been quiet for %s with requests pending: asking whether it skipped them\n", c.name, idle.Round(time.Second))
		c.mark(1)
	case m == 1 && idle >= idleEnd:
		fmt.Fprintf(c.log, "%s: the rsync sender has been quiet for %s with requests pending: ending the run\n", c.name, idle.Round(time.Second))
		c.mark(2)
	default:
		return false
	}
	return true
}

// skipped reads a sender's message that it could not open a requested
// file ("file has vanished: \"NAME\"", "send_files failed to open
// \"NAME\": ..."); NAME is the file's path after the sender's directory. The
// one waiting request it names (not the answer being received) fails at
// once: nothing will come for it. An ambiguous name is left to the
// markers.
func (c *Client) skipped(text string) {
	vanished := strings.Contains(text, "file has vanished: \"")
	if !vanished && !strings.Contains(text, "send_files failed to open \"") {
		return
	}
	c.mu.Lock()
	var hit *reply
	at := -1
	for i, r := range c.queue {
		if r == c.current || !(strings.Contains(text, "/"+r.path+"\"") || strings.Contains(text, "\""+r.path+"\"")) {
			continue
		}
		if hit != nil && hit.path != r.path {
			c.mu.Unlock()
			return // two different files end with that name
		}
		if hit == nil {
			hit, at = r, i
		}
	}
	if hit == nil {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue[:at:at], c.queue[at+1:]...)
	c.mu.Unlock()
	c.answered.Add(1)
	if vanished {
		hit.fail(fmt.Errorf("the rsync sender said: %s: %w", text, &os.PathError{Op: "open", Path: c.Join(hit.path), Err: unix.ENOENT}))
		return
	}
	hit.fail(fmt.Errorf("the rsync sender did not send it: %s", text))
}

// skipPending fails queued requests from the front while skip says so and
// returns the first one it keeps (nil when the queue ran out).
func (c *Client) skipPending(skip func(*reply) bool) *reply {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return nil
		}
		r := c.queue[0]
		if !skip(r) {
			c.mu.Unlock()
			return r
		}
		c.queue = c.queue[1:]
		why := c.lastErr
		c.mu.Unlock()
		if why == "" {
			why = "it gave no reason"
		}
		c.answered.Add(1)
		r.fail(fmt.Errorf("%s: the rsync sender did not send %q: %s", c.name, r.path, why))
	}
}

// String names the source.
func (c *Client) String() string { return c.name }

// Join names one path of the source.
func (c *Client) Join(rel string) string { return tree.JoinName(c.name, rel) }

// skipIDList reads a protocol 27 user or group name list (id, name
// length, name; ending with id 0). msync keeps numeric ids.
func skipIDList(d *decoder) error {
	for n := 0; ; n++ {
		id, err := d.int32()
		if err != nil || id == 0 {
			return err
		}
		if n > 1<<20 {
			return protoErr("id list longer than %d entries", 1<<20)
		}
		l, err := d.byte()
		if err != nil {
			return err
		}
		if _, err := d.bytes(int(l)); err != nil {
			return err
		}
	}
}

// SignsBasis says the engine should hand over the old copy of a file
// (send.Request.Basis): stock rsync needs its own block sums of it.
func (c *Client) SignsBasis() bool { return true }

// FetchesAhead says that Fetch only queues a request (send.AheadFetcher).
func (c *Client) FetchesAhead() bool { return true }
