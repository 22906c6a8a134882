package rsync

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/internal/netx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/module"
	"golang.org/x/sys/unix"
)

// Module is a directory the daemon serves (see transport/module).
type Module = module.Module

// Server is an rsync daemon that stock rsync clients pull from
// (rsync -a rsync://host:port/NAME/ dst) and push to. Pulls are answered
// by msync's sender (tokens of at most 32 KiB); pushes run msync's engine,
// so a push lands as atomically as any msync pass and commits manifests.
type Server struct {
	Modules []Module
	Log     io.Writer
	// StateDir is the root beneath which the state of pushes is kept, one
	// directory per module and path (state.ModuleDir); empty means
	// state.ServeRoot().
	StateDir string
	// Limits; zero means netx's defaults (see Limits).
	Limits Limits
}

// Serve accepts connections until ctx ends. Each connection is served on
// its own; one that fails or panics never stops the others.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Log == nil {
		s.Log = io.Discard
	}
	// Connections (and the passes they run) log at the same time.
	s.Log = &lockedWriter{w: s.Log}
	return netx.Serve(ctx, ln, s.Limits.config(s.Log), s.handle)
}

// muxWriter frames everything written as rsync's multiplexed data
// messages, and sends out-of-band messages.
type muxWriter struct {
	w *bufio.Writer
}

func (m *muxWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), maxMsgBytes)
		if err := m.frame(msgData, p[:k]); err != nil {
			return 0, err
		}
		p = p[k:]
	}
	return n, m.w.Flush()
}

// maxMsgText bounds the text of an out-of-band message (an error a
// client prints): stock rsync reads one into a buffer of MAXPATHLEN plus
// 1 KiB (4 KiB and less in rsync 2.6) and aborts the whole run with
// "multiplexing overflow" on a longer one; a path alone takes up to 32
// KiB.
const maxMsgText = 4000

// message sends text as an out-of-band message of type tag, ended by a
// newline; a longer text than maxMsgText is cut in its middle.
func (m *muxWriter) message(tag byte, text string) error {
	const more = " [...] "
	text = strings.TrimSuffix(text, "\n")
	if len(text) > maxMsgText-1 {
		// Its beginning and its end, where the cause is.
		head, tail := (maxMsgText-len(more)-1)/2, len(text)-(maxMsgText-len(more)-1)/2
		for head > 0 && !utf8.RuneStart(text[head]) {
			head-- // not inside a character
		}
		for tail < len(text) && !utf8.RuneStart(text[tail]) {
			tail++
		}
		text = text[:head] + more + text[tail:]
	}
	return m.frame(tag, []byte(text+"\n"))
}

func (m *muxWriter) frame(tag byte, p []byte) error {
	var h [4]byte
	binary.LittleEndian.PutUint32(h[:], uint32(mplexBase+tag)<<24|uint32(len(p)))
	m.w.Write(h[:])
	_, err := m.w.Write(p)
	return err
}

// session is one daemon connection after the module is chosen.
type session struct {
	s      *Server
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	mod    Module
	name   string // rsync://addr/module for messages
	args   serverArgs
	mux    *muxWriter
	enc    *encoder
	dec    *decoder
	seed   int32
	logged bool
	shell  bool // over a remote shell: no module, any path
}

// serverArgs are the options a stock client sent with its request.
type serverArgs struct {
	sender     bool // the client pulls
	numericIDs bool
	delete     bool
	owner      bool
	group      bool
	links      bool
	devices    bool
	hardLinks  bool
	sparse     bool
	paths      []string
}

// fields is what the file list carries under these options.
func (a serverArgs) fields() listOptions {
	o := listOptions{uid: a.owner, gid: a.group, links: a.links, devices: a.devices, hardLinks: a.hardLinks}
	if !a.numericIDs {
		if a.owner {
			o.idLists++
		}
		if a.group {
			o.idLists++
		}
	}
	return o
}

// parseServerArgs reads `rsync --server [--sender] -flags ... . PATH`.
// Options msync cannot honour are refused by name.
func parseServerArgs(args []string) (serverArgs, error) {
	var a serverArgs
	if len(args) == 0 || args[0] != "--server" {
		return a, fmt.Errorf("not an rsync server request")
	}
	rest := args[1:]
	dot := -1
	for i, x := range rest {
		if x == "." {
			dot = i
			break
		}
		switch {
		case x == "--sender":
			a.sender = true
		case x == "--numeric-ids":
			a.numericIDs = true
		case x == "--delete" || x == "--delete-before" || x == "--delete-during" || x == "--delete-after" || x == "--delete-delay":
			a.delete = true
		case x == "--sparse":
			a.sparse = true
		case x == "--stats":
			// the client prints its own totals; nothing changes here
		case strings.HasPrefix(x, "-e"):
			// capability letters of newer clients; protocol 27 ignores them
		case strings.HasPrefix(x, "--"):
			return a, refusal("msync does not support the rsync option %s", x)
		case strings.HasPrefix(x, "-"):
			for _, f := range x[1:] {
				switch f {
				case 'l':
					a.links = true
				case 'H':
					a.hardLinks = true
				case 'D':
					a.devices = true
				case 't', 'p', 'r':
				case 'R':
					return a, refusal("msync does not support the rsync option -R (--relative)")
				case 'o':
					a.owner = true
				case 'g':
					a.group = true
				case 'S':
					a.sparse = true
				case 'v', 'i', 'n':
					if f == 'n' {
						return a, refusal("msync does not support the rsync option -n (--dry-run)")
					}
				case 'e':
					// "-e.xxx" inside a cluster: the rest are capability letters
				default:
					return a, refusal("msync does not support the rsync option -%c", f)
				}
				if f == 'e' {
					break
				}
			}
		default:
			return a, fmt.Errorf("unexpected argument %q", x)
		}
	}
	if dot < 0 || dot == len(rest)-1 {
		return a, fmt.Errorf("no path in the request")
	}
	a.paths = rest[dot+1:]
	return a, nil
}

func (s *Server) handle(ctx context.Context, conn net.Conn) error {
	ss := &session{s: s, conn: conn, br: bufio.NewReaderSize(conn, 256<<10), bw: bufio.NewWriterSize(conn, 64<<10)}
	fmt.Fprintf(ss.bw, "@RSYNCD: %d.0\n", ProtocolVersion)
	if err := ss.bw.Flush(); err != nil {
		return err
	}
	greeting, err := readLine(ss.br)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	v, ok := strings.CutPrefix(greeting, "@RSYNCD: ")
	if !ok {
		return fmt.Errorf("not an rsync client (it said %q)", greeting)
	}
	if major, _, _ := strings.Cut(strings.Fields(v + " ")[0], "."); !atLeast(major, ProtocolVersion) {
		ss.refuse(fmt.Sprintf("protocol %s is older than 27 (rsync 2.6.0)", v))
		return nil
	}
	name, err := readLine(ss.br)
	if err != nil {
		return fmt.Errorf("module: %w", err)
	}
	if name == "" || name == "#list" {
		for _, m := range s.Modules {
			fmt.Fprintf(ss.bw, "%-15s\tmsync\n", m.Name)
		}
		ss.bw.WriteString("@RSYNCD: EXIT\n")
		return ss.bw.Flush()
	}
	if ss.mod, ok = module.Lookup(s.Modules, name); !ok {
		ss.refuse(fmt.Sprintf("Unknown module '%s'", name))
		return nil
	}
	ss.name = "rsync://" + conn.LocalAddr().String() + "/" + name
	ss.bw.WriteString("@RSYNCD: OK\n")
	if err := ss.bw.Flush(); err != nil {
		return err
	}
	var args []string
	for {
		a, err := readLine(ss.br)
		if err != nil {
			return fmt.Errorf("arguments: %w", err)
		}
		if a == "" {
			break
		}
		if len(args) >= 256 {
			return protoErr("more than 256 arguments")
		}
		args = append(args, a)
	}
	conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if TestHooks.BeforeRequest != nil {
		TestHooks.BeforeRequest(args)
	}
	return ss.run(ctx, args)
}

// TestHooks let tests reach into a served connection. They must stay nil
// outside tests.
var TestHooks struct {
	BeforeRequest func(args []string) // a daemon request, before it is served
}

// run serves one request once the protocol version is agreed: the
// checksum seed, then the pull or the push args ask for.
func (ss *session) run(ctx context.Context, args []string) error {
	ss.seed = int32(time.Now().Unix())
	var seed [4]byte
	binary.LittleEndian.PutUint32(seed[:], uint32(ss.seed))
	ss.bw.Write(seed[:])
	if err := ss.bw.Flush(); err != nil {
		return err
	}
	ss.mux = &muxWriter{w: ss.bw}
	ss.enc = &encoder{w: bufio.NewWriterSize(ss.mux, 64<<10)}
	ss.dec = &decoder{r: ss.br}
	a, err := parseServerArgs(args)
	ss.args = a
	if err == nil && len(a.paths) != 1 {
		err = refusal("msync serves one path per request, not %d", len(a.paths))
	}
	if err == nil && !a.sender && !ss.shell && ss.mod.ReadOnly {
		err = refusal("module %s is read-only", ss.mod.Name)
	}
	var t *target
	if err == nil {
		t, err = ss.resolve(a.paths[0])
	}
	if err != nil {
		ss.fail(err)
		return err
	}
	defer func() { t.dir.Close() }() // serveReceiver may turn t into a new directory
	if a.sender {
		err = ss.serveSender(ctx, t, ss.topName(a.paths[0], t.host))
	} else {
		err = ss.serveReceiver(ctx, t)
	}
	if err != nil {
		ss.fail(err)
	}
	ss.linger()
	return err
}

// linger closes the connection gracefully: the client reads the last of
// what was sent before it sees the end, and whatever it still sends is
// read rather than answered with a reset that could discard the end.
func (ss *session) linger() {
	ss.bw.Flush()
	if ss.conn == nil {
		return
	}
	netx.CloseWrite(ss.conn)
	ss.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, ss.br)
}

// ServeShell is stock rsync's remote-shell server, for a stock client
// that runs msync on the far side of ssh (--rsync-path="msync
// rsync-server"): args are the client's `--server ...` arguments, in and
// out the shell's stdio. Any path the shell's user can reach is served.
//
// It returns soon after ctx ends even when a read of in cannot be
// interrupted (a terminal or a blocking pipe): the caller exits, and the
// pass it cut short is one any kill could have cut.
func ServeShell(ctx context.Context, in io.Reader, out io.Writer, args []string, log io.Writer) error {
	done := make(chan error, 1)
	go func() { done <- serveShell(ctx, in, out, args, log) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if c, ok := in.(io.Closer); ok {
		c.Close()
	}
	select {
	case err := <-done:
		return err
	case <-time.After(shellGrace):
		return fmt.Errorf("rsync-shell: %w", context.Cause(ctx))
	}
}

// shellGrace is how long an interrupted ServeShell waits for its pass to
// wind down.
var shellGrace = 3 * time.Second

func serveShell(ctx context.Context, in io.Reader, out io.Writer, args []string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	// The shell authenticated the client: its list is bounded as one msync pulls.
	ss := &session{s: &Server{Log: log, Limits: Limits{FileList: clientFileListBytes}}, br: bufio.NewReaderSize(in, 256<<10), bw: bufio.NewWriterSize(out, 64<<10),
		name: "rsync-shell", shell: true}
	(&encoder{w: ss.bw}).int32(ProtocolVersion)
	if err := ss.bw.Flush(); err != nil {
		return err
	}
	v, err := (&decoder{r: ss.br}).int32()
	if err != nil {
		return fmt.Errorf("reading the client's protocol version: %w", err)
	}
	if v < ProtocolVersion {
		return fmt.Errorf("the client speaks protocol %d; msync needs %d or later", v, ProtocolVersion)
	}
	return ss.run(ctx, args)
}

// refuse answers the module request with an error line.
func (ss *session) refuse(msg string) {
	fmt.Fprintf(ss.bw, "@ERROR: %s\n", msg)
	ss.bw.Flush()
}

// refused is a request msync will not serve; the client exits with
// rsync's "unsupported" code (4).
type refused struct{ msg string }

func (r refused) Error() string { return r.msg }

func refusal(format string, a ...any) error { return refused{fmt.Sprintf(format, a...)} }

// errPartial says some files of a push failed (rsync's code 23).
type errPartial struct{ n int64 }

func (e errPartial) Error() string { return fmt.Sprintf("%d file(s) failed", e.n) }

// exitCode is the rsync exit code the client reports for err.
func exitCode(err error) int32 {
	var r refused
	var p errPartial
	switch {
	case errors.As(err, &r):
		return 4 // RERR_UNSUPPORTED
	case errors.As(err, &p):
		return 23 // RERR_PARTIAL
	case errors.Is(err, ErrProtocol):
		return 12 // RERR_PROTOCOL
	}
	return 11 // RERR_FILEIO
}

// fail tells the client why, as rsync's error message and exit code.
func (ss *session) fail(err error) {
	if ss.logged {
		return
	}
	ss.logged = true
	ss.enc.w.Flush()
	ss.mux.message(msgError, "msync: "+err.Error())
	var code [4]byte
	binary.LittleEndian.PutUint32(code[:], uint32(exitCode(err)))
	ss.mux.frame(msgErrExit, code[:])
	ss.bw.Flush()
}

// target is what a request names, open: the daemon never reaches it
// again by a path string.
type target struct {
	dir     *fsx.Root // the directory served or received into
	file    string    // a pull of one file, or a push perhaps of one (pushOfOne): its name in dir
	created bool      // a push created dir
	host    string    // its host path, for the state dir's name; never opened
}

// testHookResolved runs once a daemon request's directory is open, before
// it is used; tests hold a request there.
var testHookResolved func()

// resolve opens what a requested "module/sub/path" names: a directory of
// the module, or for a pull a regular file in one. The module is opened
// once and the path resolved beneath that descriptor, never through a
// symlink nor outside it; a push creates the directories it names. Errors
// name module paths only.
func (ss *session) resolve(p string) (*target, error) {
	var base *fsx.Root
	var clean string
	var err error
	if ss.shell {
		// Any path the shell's user can reach.
		clean = filepath.Clean(p)
		t := &target{host: clean}
		oneFile := false // a push onto a file name (see pushOfOne)
		if !ss.args.sender && mayNameFile(p) && clean != "/" {
			var st os.FileInfo
			if st, err = os.Lstat(clean); errors.Is(err, os.ErrNotExist) || err == nil && st.Mode().IsRegular() {
				oneFile = true
				if err := os.MkdirAll(filepath.Dir(clean), 0o755); err != nil {
					return nil, err
				}
			}
		}
		if !ss.args.sender && !oneFile {
			if _, err := os.Lstat(clean); errors.Is(err, os.ErrNotExist) {
				t.created = true
			}
			if err := os.MkdirAll(clean, 0o755); err != nil {
				return nil, err
			}
		}
		if !oneFile {
			if t.dir, err = fsx.OpenRoot(clean); err == nil || !ss.args.sender || !errors.Is(err, unix.ENOTDIR) {
				return t, err
			}
		}
		dir := filepath.Dir(clean)
		if base, err = fsx.OpenRoot(dir); err != nil {
			return nil, err
		}
		clean = filepath.Base(clean)
	} else {
		rel, ok := strings.CutPrefix(p, ss.mod.Name)
		if !ok || (rel != "" && rel[0] != '/') {
			return nil, fmt.Errorf("path %q is not in module %s", p, ss.mod.Name)
		}
		if clean, err = cleanName(strings.TrimPrefix(rel, "/")); err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		clean = strings.Trim(clean, "/")
		if clean == "." {
			clean = ""
		}
		if base, err = ss.mod.Open(); err != nil {
			return nil, err
		}
	}
	defer base.Close()
	var t *target
	ok := false
	if !ss.args.sender && mayNameFile(p) && clean != "" {
		t, ok, err = resolveFileBeneath(base, clean)
	}
	if !ok && err == nil {
		t, err = resolveBeneath(base, clean, ss.args.sender)
	}
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", p, err)
	}
	if ss.shell {
		t.host = filepath.Join(base.Path, clean)
	} else {
		t.host = ss.mod.HostPath(clean)
	}
	if testHookResolved != nil {
		testHookResolved()
	}
	return t, nil
}

// resolveBeneath opens rel beneath base: a directory, or for a sender a
// regular file in one; a receiver creates the directories it names.
func resolveBeneath(base *fsx.Root, rel string, sender bool) (*target, error) {
	t := &target{}
	dir, created, err := module.OpenDir(base, rel, !sender, 0o755)
	t.created = created
	if err == nil || !sender || rel == "" || !errors.Is(err, unix.ENOTDIR) {
		t.dir = dir
		return t, err
	}
	// Perhaps a pull of one file: it must be a regular file.
	parent, name := fsx.Split(rel)
	if t.dir, err = base.OpenDir(parent); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(t.dir.Fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.dir.Close()
		return nil, &os.PathError{Op: "lstat", Path: t.dir.Join(name), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.dir.Close()
		return nil, fmt.Errorf("%s is not a directory nor a regular file (a symlink?)", t.dir.Join(name))
	}
	t.file = name
	return t, nil
}

// topName is the name a request's top directory is sent under: "" for
// its contents ("dir/", ".", a module's root), else its base name (rsync
// sends "dir" itself when asked for "dir").
func (ss *session) topName(p, root string) string {
	if strings.HasSuffix(p, "/") || p == "." || strings.HasSuffix(p, "/.") || (!ss.shell && p == ss.mod.Name) {
		return ""
	}
	return filepath.Base(root)
}

// readExcludes reads the client's filter rules: exclude rules only, as
// patterns. At protocol 27 a rule is "- PATTERN", "+ PATTERN", "!" (clear
// the list) or a bare PATTERN, which is an exclude (what --exclude sends).
func (ss *session) readExcludes() ([]string, error) {
	var excludes []string
	total := 0
	for {
		n, err := ss.dec.int32()
		if err != nil || n == 0 {
			return excludes, err
		}
		if n < 0 || n > 2*maxPath {
			return nil, protoErr("filter rule of %d bytes", n)
		}
		b, err := ss.dec.bytes(int(n))
		if err != nil {
			return nil, err
		}
		rule := string(b)
		switch {
		case rule == "!":
			excludes = excludes[:0]
			continue
		case strings.HasPrefix(rule, "+ "):
			return nil, refusal("msync serves exclude rules only, not %q", b)
		}
		if total += len(b); len(excludes) >= filter.MaxPatterns || total > filter.MaxTotalLen {
			return nil, protoErr("more than %d filter rules or %d bytes of them", filter.MaxPatterns, filter.MaxTotalLen)
		}
		excludes = append(excludes, strings.TrimPrefix(rule, "- "))
	}
}

// serveSender answers a stock client's pull of root, sent under top (see
// topName).
func (ss *session) serveSender(ctx context.Context, t *target, top string) error {
	excludes, err := ss.readExcludes()
	if err != nil {
		return err
	}
	dir, err := t.dir.Dup()
	if err != nil {
		return err
	}
	local := tree.NewLocalAt(dir)
	var entries []*manifest.Entry
	var problems []scan.Problem
	if t.file != "" {
		// One file: sent by its name, from its directory.
		var st unix.Stat_t
		if err := unix.Fstatat(dir.Fd(), t.file, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			local.Close()
			return &os.PathError{Op: "lstat", Path: dir.Join(t.file), Err: err}
		}
		entries, top = []*manifest.Entry{scan.FromStat(t.file, &st)}, ""
	} else {
		var err error
		if entries, problems, err = scanAll(ctx, local, excludes); err != nil {
			local.Close()
			return err
		}
	}
	defer local.Close()
	var ioError int32
	for _, p := range problems {
		ioError = 1
		ss.enc.w.Flush()
		ss.mux.message(msgError, fmt.Sprintf("msync: %s: %v", local.Join(p.Path), p.Err))
	}
	// Name lists go empty: the client keeps numeric ids.
	fields := ss.args.fields()
	kept := entries[:0]
	for _, e := range entries {
		if !fields.omit(e) {
			kept = append(kept, e)
		}
	}
	files := sendList(kept, top)
	// Stock rsync takes names shorter than its MAXPATHLEN only and ends
	// the whole run on a longer one: skip those, as its own sender does,
	// with an error and the I/O error flag (a partial transfer).
	// What is beneath a skipped directory (all next to it in the list's
	// order) goes with it, unnamed.
	sent, skipped := files[:0], ""
	for _, f := range files {
		if skipped != "" && strings.HasPrefix(f.wire, skipped+"/") {
			continue
		}
		if len(f.wire) >= maxPath || len(f.e.LinkTarget) >= maxPath {
			ioError, skipped = 1, f.wire
			ss.enc.w.Flush()
			ss.mux.message(msgError, fmt.Sprintf("msync: skipping overlong name or symlink target: %s", local.Join(f.e.Path)))
			continue
		}
		sent = append(sent, f)
	}
	files = sent
	if err := ss.enc.writeFileListAs(files, fields, ioError); err != nil {
		return err
	}
	var read, size int64
	for _, f := range files {
		size += f.e.Size
	}
	err = serveRequests(ctx, ss.dec, ss.enc, files, local, ss.seed, func(s sentFile) {
		if s.err != nil {
			ss.enc.w.Flush()
			ss.mux.message(msgError, fmt.Sprintf("msync: %s: %v", local.Join(s.e.Path), s.err))
		}
		read += s.literal
	})
	if err != nil {
		return err
	}
	ss.enc.longint(0)    // bytes read from the client
	ss.enc.longint(read) // bytes written
	ss.enc.longint(size)
	if err := ss.enc.w.Flush(); err != nil {
		return err
	}
	bye, err := ss.dec.int32()
	if err == nil && bye != -1 {
		err = protoErr("end of run: got %d, want -1", bye)
	}
	return err
}

// serveReceiver takes a stock client's push into root with msync's engine.
func (ss *session) serveReceiver(ctx context.Context, t *target) error {
	var excludes []string
	if ss.args.delete {
		// A pushing client sends its rules only when it deletes.
		var err error
		if excludes, err = ss.readExcludes(); err != nil {
			return err
		}
	}
	c := &Client{name: ss.name, log: ss.s.Log, phase: make(chan struct{}, 4), finished: make(chan struct{}),
		kick: make(chan struct{}, 1), server: true, dec: ss.dec, enc: ss.enc, seed: ss.seed,
		closer: func() error { return nil }, fields: ss.args.fields()}
	c.fields.maxBytes = ss.s.Limits.FileList
	// A client pushing "dir" (no trailing slash) sends no top directory:
	// the destination's own stands in, unchanged.
	var st unix.Stat_t
	if err := unix.Fstat(t.dir.Fd(), &st); err != nil {
		return &os.PathError{Op: "stat", Path: t.dir.Path, Err: err}
	}
	c.root = scan.FromStat("", &st)
	var source engine.Source = c
	one := false
	if t.file != "" {
		l, o, err := ss.pushOfOne(ctx, c, t)
		if err != nil {
			return err
		}
		source, one = l, o
		if one {
			// Only the one file: no subdirectory of its directory is
			// scanned, nothing there deleted.
			excludes = []string{"*/"}
		}
	}
	src, sd, err := ss.stateDir(t.host)
	if err != nil {
		return err
	}
	c.spill = sd // answers that come before their worker wait on disk here
	// rsync's semantics: nothing is deleted without --delete, and then
	// everything the client does not have.
	o := engine.Options{Kind: engine.Initial, Src: src, Dst: t.dir.Path, DstRoot: t.dir, DstCreated: t.created,
		StateDir: sd, Source: source, Exclude: excludes,
		Owners: os.Geteuid() == 0 && ss.args.owner && ss.args.group, Sparse: ss.args.sparse, Delta: engine.DeltaNever, Workers: 32,
		DeleteExtraneous: ss.args.delete && !one, DeleteOnlyAsked: true, Log: ss.s.Log}
	res, err := engine.Run(ctx, o)
	if !ss.shell {
		// The client is told module paths only, never the state root's.
		err = state.ForClient(err, sd)
	}
	c.mu.Lock()
	healthy := c.scanned && c.err == nil
	c.mu.Unlock()
	if err == nil && res.Stats.Failed > 0 {
		err = errPartial{res.Stats.Failed}
	}
	if healthy && (err == nil || errors.As(err, new(errPartial))) {
		// The client exits on the goodbye: the error goes before it.
		c.beforeBye = func() {
			if err == nil {
				return
			}
			ss.enc.w.Flush()
			n := 0
			for _, p := range res.Problems {
				if p.Skipped {
					continue
				}
				if n++; n > 20 {
					break
				}
				msg := p.Err
				if mp := filepath.Clean(ss.mod.Path); !ss.shell && mp != "/" {
					// The client knows the module, not where it lives.
					msg = strings.ReplaceAll(msg, mp, ss.mod.Name)
				}
				ss.mux.message(msgError, "msync: "+msg)
			}
			ss.fail(err)
		}
		c.finish()
	}
	c.broken(errors.New("pass over"))
	if err != nil {
		return err
	}
	return ss.enc.w.Flush()
}

// stateDir names a push's source (as the state directory's pair records
// it) and chooses its state directory: over a remote shell, the pair's
// default for the shell's user; in a daemon, one beneath the daemon's own
// state root for the module and the path within it (state.ModuleDir).
func (ss *session) stateDir(root string) (src, dir string, err error) {
	if ss.shell {
		dir, err = state.DefaultDir("rsync-shell", root)
		return "rsync-shell", dir, err
	}
	sr := ss.s.StateDir
	if sr == "" {
		if sr, err = state.ServeRoot(); err != nil {
			return "", "", err
		}
	}
	rel, err := ss.mod.Rel(root)
	if err != nil {
		return "", "", fmt.Errorf("push into a directory not beneath module %s", ss.mod.Name)
	}
	src = "rsync-daemon:" + ss.mod.Name
	dir, err = state.ModuleDir(sr, ss.mod.Name, rel, src)
	return src, dir, err
}

// atLeast reports whether the decimal version v is at least min.
func atLeast(v string, min int) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= min
}

// lockedWriter serialises writes from concurrent connections.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
