package rsync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kballard/go-shellquote"
	"github.com/msync/msync/manifest"
)

// DefaultPort is the rsync daemon's TCP port.
const DefaultPort = 873

// Endpoint is a tree served by stock rsync.
type Endpoint struct {
	// Daemon selects rsync://Host:Port/Module/Path; otherwise a remote
	// shell (Rsh, default "ssh") runs RsyncPath on Host.
	Daemon bool
	User   string
	Host   string
	Port   int
	Module string // daemon only
	Path   string // within the module (daemon) or on the host (shell)
	// Rsh is the remote shell command line, as rsync's -e.
	Rsh string
	// RsyncPath is the command that runs rsync on the far side.
	RsyncPath string
	// Name names the endpoint in messages.
	Name string

	push, delete, sparse bool // set by Push: the far side receives
	// Checksum asks the sender for every file's MD4 in the file list
	// (rsync -c), for a verification.
	Checksum bool
}

// serverArgs are the arguments of the far side's `rsync --server --sender`:
// archive mode with hard links and numeric ids (no name lists cross).
func (e *Endpoint) serverArgs() []string {
	path := e.Path
	if e.Daemon {
		path = strings.TrimSuffix(e.Module+"/"+strings.TrimPrefix(path, "/"), "/")
	}
	if path == "" {
		path = "."
	}
	args := []string{"--server", "--sender", "-lHogDtpr", "--numeric-ids"}
	if e.Checksum {
		args = append(args, "--checksum")
	}
	if e.push {
		args = []string{"--server", "-lHogDtpr", "--numeric-ids"}
		if e.sparse {
			args = append(args, "--sparse")
		}
		if e.delete {
			args = append(args, "--delete")
		}
	}
	return append(args, ".", strings.TrimSuffix(path, "/")+"/")
}

// Options configure a connection.
type Options struct {
	// Log receives the peer's messages (rsync's info, warnings and
	// errors) and the remote shell's stderr.
	Log io.Writer
	// SpillDir holds the unlinked temp files of answers that arrive before
	// their worker reads them (spill.go); empty means $TMPDIR. A pass puts
	// it in its state directory: on disk, where $TMPDIR may be RAM.
	SpillDir string
}

// Client is one connection to a stock rsync sender: one file list, then
// the files the engine asks for.
type Client struct {
	name  string
	log   io.Writer
	spill string // Options.SpillDir

	closer  func() error // ends the connection (and the remote shell)
	abort   func()       // cuts the connection at once (kills the remote shell)
	unwatch func() bool  // stops watching the context given to Dial
	rawW    io.Writer
	read    atomic.Int64
	written atomic.Int64

	dec  *decoder
	wmu  sync.Mutex
	enc  *encoder
	seed int32
	// markers counts the end-of-phase markers sent (under wmu): rsync's
	// sender answers each once it has dealt with every request before it,
	// which is how a request it skipped is known to get no answer.
	markers int

	mu       sync.Mutex
	queue    []*reply // requests sent, in order
	current  *reply   // the answer being received
	ended    bool     // the run's last marker went: no more requests
	err      error    // the connection broke: no more requests
	lastErr  string   // last error message from the peer
	msgs     []string // error messages seen while the file list came (maxListMsgs)
	msgsLost int      // those beyond maxListMsgs
	listing  bool
	ioError  int32
	scanned  bool
	phase    chan struct{} // a phase-end marker arrived
	finished chan struct{} // the reader stopped
	kick     chan struct{} // requests wait in enc for the flusher
	// unflushed requests wait in enc; sent went out; answered came back
	// (skipped ones included).
	unflushed, sent, answered atomic.Int64
	stats                     Stats
	list                      *fileList
	// server: this end serves a stock client that pushes (it sends the
	// file list unasked and no totals at the end).
	server bool
	root   *manifest.Entry // server: the destination's top directory, for a list without one
	// beforeBye, if set, runs just before the goodbye (server: the run's
	// error, which a client that got the goodbye would never read).
	beforeBye func()
	fields    listOptions // what the file list carries
}

// Stats are the sender's totals at the end of a run.
type Stats struct {
	Read, Written, Size int64
}

// Dial connects to e and completes rsync's handshake.
func Dial(ctx context.Context, e Endpoint, o Options) (*Client, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	// The sender's messages and the remote shell's stderr arrive at once.
	o.Log = &lockedWriter{w: o.Log}
	c := &Client{name: e.Name, log: o.Log, spill: o.SpillDir, phase: make(chan struct{}, 4), finished: make(chan struct{}), kick: make(chan struct{}, 1), fields: allFields}
	c.fields.checksum = e.Checksum
	var err error
	c.fields.maxBytes = clientFileListBytes
	if e.Daemon {
		err = c.dialDaemon(ctx, &e)
	} else {
		err = c.dialShell(ctx, &e)
	}
	if err != nil {
		return c, err
	}
	// Every wait on the sender ends when ctx does (SIGINT, SIGTERM): the
	// connection is cut and every pending answer fails.
	c.unwatch = context.AfterFunc(ctx, func() {
		c.broken(fmt.Errorf("%s: %w", c.name, context.Cause(ctx)))
		c.abort()
	})
	return c, nil
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *Client) dialDaemon(ctx context.Context, e *Endpoint) error {
	port := e.Port
	if port == 0 {
		port = DefaultPort
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(e.Host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	c.closer = conn.Close
	c.abort = func() { conn.Close() }
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	defer conn.SetDeadline(time.Time{})
	br := bufio.NewReader(countReader{conn, &c.read})
	bw := bufio.NewWriter(countWriter{conn, &c.written})
	fail := func(err error) error {
		conn.Close()
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	line, err := readLine(br)
	if err != nil {
		return fail(fmt.Errorf("reading the daemon's greeting: %w", err))
	}
	v, ok := strings.CutPrefix(line, "@RSYNCD: ")
	if !ok {
		return fail(fmt.Errorf("not an rsync daemon (it said %q)", line))
	}
	major, _, _ := strings.Cut(strings.Fields(v + " ")[0], ".")
	if n, err := strconv.Atoi(major); err != nil || n < ProtocolVersion {
		return fail(fmt.Errorf("the daemon speaks rsync protocol %q; msync needs %d or later (rsync 2.6.0+)", v, ProtocolVersion))
	}
	fmt.Fprintf(bw, "@RSYNCD: %d.0\n%s\n", ProtocolVersion, e.Module)
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return fail(fmt.Errorf("module %q: %w", e.Module, err))
		}
		switch {
		case line == "@RSYNCD: OK":
		case strings.HasPrefix(line, "@RSYNCD: AUTHREQD"):
			return fail(fmt.Errorf("module %q wants a password: msync does not do rsync daemon authentication; use rsync over ssh (host:path with --rsync)", e.Module))
		case strings.HasPrefix(line, "@ERROR"):
			return fail(fmt.Errorf("the daemon refused module %q: %s", e.Module, strings.TrimSpace(strings.TrimPrefix(line, "@ERROR:"))))
		case line == "@RSYNCD: EXIT":
			return fail(fmt.Errorf("the daemon closed the connection"))
		default:
			fmt.Fprintf(c.log, "%s: %s\n", e.Name, manifest.Escape(line)) // message of the day
			continue
		}
		break
	}
	for _, a := range e.serverArgs() {
		bw.WriteString(a)
		bw.WriteByte('\n')
	}
	bw.WriteByte('\n')
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	c.rawW = countWriter{conn, &c.written}
	if err := c.start(br); err != nil {
		return fail(err)
	}
	return nil
}

// readLine reads one handshake line, at most 4 KiB.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, err := br.ReadSlice('\n')
		b = append(b, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if len(b) > 4096 {
			return "", protoErr("handshake line longer than 4 KiB")
		}
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (c *Client) dialShell(ctx context.Context, e *Endpoint) error {
	rsh := e.Rsh
	if rsh == "" {
		rsh = "ssh"
	}
	words, err := shellquote.Split(rsh)
	if err != nil || len(words) == 0 {
		return fmt.Errorf("remote shell %q: cannot split it into words", rsh)
	}
	if e.User != "" {
		words = append(words, "-l", e.User)
	}
	rp := e.RsyncPath
	if rp == "" {
		rp = "rsync"
	}
	// The remote shell runs one command line: quote every argument.
	words = append(words, e.Host, rp+" "+shellquote.Join(e.serverArgs()...))
	cmd := exec.Command(words[0], words[1:]...)
	cmd.Stderr = c.log
	// Wait returns even when a child of the shell keeps its output open.
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: starting %s: %w", e.Name, words[0], err)
	}
	var once sync.Once
	var werr error
	c.closer = func() error {
		once.Do(func() {
			stdin.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case werr = <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				werr = <-done
			}
		})
		return werr
	}
	c.abort = func() { cmd.Process.Kill() }
	fail := func(err error) error {
		cmd.Process.Kill()
		c.closer()
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	br := bufio.NewReader(countReader{stdout, &c.read})
	c.rawW = countWriter{stdin, &c.written}
	bw := bufio.NewWriter(c.rawW)
	(&encoder{bw}).int32(ProtocolVersion)
	if err := bw.Flush(); err != nil {
		return fail(fmt.Errorf("the remote shell ended: %w", err))
	}
	d := &decoder{r: br}
	v, err := d.int32()
	if err != nil {
		return fail(fmt.Errorf("the remote rsync did not answer (is %q installed there?): %w", rp, err))
	}
	if v < ProtocolVersion || v > 1000 {
		return fail(fmt.Errorf("the remote rsync speaks protocol %d; msync needs %d or later (rsync 2.6.0+)", v, ProtocolVersion))
	}
	if err := c.start(br); err != nil {
		return fail(err)
	}
	return nil
}

// start reads the checksum seed and switches to the multiplexed stream.
func (c *Client) start(br *bufio.Reader) error {
	d := &decoder{r: br}
	seed, err := d.int32()
	if err != nil {
		return fmt.Errorf("reading the checksum seed: %w", err)
	}
	c.seed = seed
	mux := &muxReader{r: br, onMsg: c.onMsg}
	c.dec = &decoder{r: bufio.NewReaderSize(mux, 256<<10)}
	c.enc = &encoder{w: bufio.NewWriterSize(c.rawW, 64<<10)}
	return nil
}

// A sender's error messages are kept (as the problems of its scan) while
// its file list comes: at most maxListMsgs, each cut to maxPeerMsg bytes
// (stock rsync's are shorter than 5 KiB; a frame may carry 16 MiB).
const (
	maxListMsgs = 1000
	maxPeerMsg  = 8 << 10
)

// onMsg handles one out-of-band message from the sender.
func (c *Client) onMsg(tag byte, msg []byte) error {
	if len(msg) > maxPeerMsg {
		msg = append(msg[:maxPeerMsg:maxPeerMsg], " [...]"...)
	}
	text := strings.TrimRight(string(msg), "\n")
	switch tag {
	case msgInfo, msgLog, msgClient:
		// Before protocol 30 a warning comes as information.
		fmt.Fprintf(c.log, "%s: %s\n", c.name, manifest.EscapeLines(text))
		c.mu.Lock()
		listing := c.listing
		c.mu.Unlock()
		if !listing {
			c.skipped(text)
		}
	case msgError, msgErrXfer, msgWarning, msgErrSock, msgErrUTF8:
		fmt.Fprintf(c.log, "%s: %s\n", c.name, manifest.EscapeLines(text))
		c.mu.Lock()
		if tag != msgWarning {
			c.lastErr = text
			switch {
			case !c.listing:
			case len(c.msgs) < maxListMsgs:
				c.msgs = append(c.msgs, text)
			default:
				c.msgsLost++
			}
		}
		listing := c.listing
		c.mu.Unlock()
		if !listing {
			c.skipped(text)
		}
	case msgIOError:
		if len(msg) == 4 {
			c.mu.Lock()
			c.ioError |= int32(msg[0]) | int32(msg[1])<<8 | int32(msg[2])<<16 | int32(msg[3])<<24
			c.mu.Unlock()
		}
	case msgErrExit:
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last == "" {
			last = "it gave no reason"
		}
		return fmt.Errorf("the rsync sender exited with an error: %s", last)
	}
	return nil
}

// WireBytes returns the bytes that crossed the connection so far.
func (c *Client) WireBytes() int64 { return c.read.Load() + c.written.Load() }

// broken records why the connection can no longer be used.
func (c *Client) broken(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, r := range q {
		r.fail(err)
	}
}

// Close ends the run the way rsync does (phase markers, the sender's
// totals, a goodbye) when the connection is healthy, then closes it.
func (c *Client) Close() error {
	if c.closer == nil {
		return nil
	}
	c.mu.Lock()
	healthy := c.scanned && c.err == nil
	c.mu.Unlock()
	if healthy {
		c.finish()
	}
	c.broken(errors.New("connection closed"))
	if c.unwatch != nil {
		c.unwatch()
	}
	err := c.closer()
	c.closer = nil
	return err
}

// mark sends end-of-phase markers until n have gone. The second ends the
// run: no request can follow it.
func (c *Client) mark(n int) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.markers >= n {
		return true
	}
	if n >= 2 {
		c.mu.Lock()
		c.ended = true
		c.mu.Unlock()
	}
	for c.markers < n {
		c.enc.int32(-1)
		c.markers++
	}
	n64 := c.unflushed.Swap(0)
	c.sent.Add(n64)
	return c.enc.w.Flush() == nil
}

// finish sends rsync's end-of-phase markers and goodbye, bounded in time.
// Markers sent earlier (see watch) are not sent again; each is answered
// once, in c.phase.
func (c *Client) finish() {
	timeout := time.After(30 * time.Second)
	bye := func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if c.beforeBye != nil {
			c.beforeBye()
		}
		c.enc.int32(-1)
		return c.enc.w.Flush() == nil
	}
	wait := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-c.finished:
			// The reader stopped: the marker may have come just before.
			select {
			case <-ch:
				return true
			default:
				return false
			}
		case <-timeout:
			return false
		}
	}
	// End of the transfer phase, then of the redo phase: each is
	// answered by the sender.
	if !c.mark(1) || !wait(c.phase) || !c.mark(2) {
		return
	}
	if c.server {
		// A client sender sends nothing more; the reader stops.
		if wait(c.finished) {
			bye()
		}
		return
	}
	// A server sender then sends its totals and waits for the goodbye.
	// The goodbye goes as soon as the second answer is here, because it
	// also acknowledges that answer: a daemon's totals, a small write
	// behind an unacknowledged one, would otherwise wait for this host's
	// delayed acknowledgement (Nagle's algorithm; 40 ms per pass).
	if wait(c.phase) {
		bye()
		wait(c.finished)
	}
}
