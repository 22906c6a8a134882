package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/record"

	"github.com/cespare/xxhash/v2"

	"github.com/msync/msync/delta"
	"github.com/msync/msync/internal/netx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/transport/wire"
)

// hostilePeer plays a source that sends the scan of entries (or raw bytes)
// and answers every file request with ops.
type hostilePeer struct {
	entries []*manifest.Entry
	rawScan []byte // sent instead of a manifest when set
	ops     func(w *delta.OpWriter)
	frame   []byte // sent raw after the open reply when set
}

func (h *hostilePeer) run(t *testing.T, conn net.Conn) {
	defer conn.Close()
	if _, _, err := wire.Handshake(conn, conn, wire.Hello{Version: wire.Version, MinVersion: wire.MinVersion}); err != nil {
		return
	}
	r := wire.NewReader(conn)
	out := func(ty wire.Type, id uint32, p []byte) {
		conn.Write(append(wire.AppendHeader(nil, ty, id, len(p)), p...))
	}
	for {
		f, err := r.Next()
		if err != nil {
			return
		}
		switch f.Type {
		case wire.TOpen:
			out(wire.TOpenOK, 0, []byte(`{"path":"/"}`))
			if h.frame != nil {
				conn.Write(h.frame)
			}
		case wire.TScanReq:
			data := h.rawScan
			if data == nil {
				var b bytes.Buffer
				mw, _ := manifest.NewWriter(&b)
				for _, e := range h.entries {
					if err := mw.Add(e); err != nil {
						t.Errorf("hostile scan: %v", err)
					}
				}
				mw.Close()
				data = b.Bytes()
			}
			for len(data) > 0 {
				n := min(len(data), wire.ChunkSize)
				out(wire.TScanData, f.Stream, data[:n])
				data = data[n:]
			}
			out(wire.TScanEnd, f.Stream, []byte(`{}`))
		case wire.TFetch:
			var b bytes.Buffer
			w := delta.NewOpWriter(&b)
			h.ops(w)
			out(wire.TData, f.Stream, b.Bytes())
			out(wire.TEnd, f.Stream, wire.EncodeEnd(&send.Result{Status: send.OK, Stats: delta.Stats{Size: 5}}))
		}
	}
}

func pullFromHostile(t *testing.T, h *hostilePeer) (string, *record.Result, error) {
	t.Helper()
	dst, res, setupErr, err := pullFrom(t, h)
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return dst, res, err
}

// pullFrom is pullFromHostile that returns the errors of connecting and
// opening the source (setupErr) instead of failing the test: a peer whose
// first frames are hostile may be refused before the pass starts, depending
// on when the connection's reader gets to them.
func pullFrom(t *testing.T, h *hostilePeer) (dst string, res *record.Result, setupErr, err error) {
	a, b := net.Pipe()
	go h.run(t, b)
	c, err := NewConn(a, Options{Name: "evil:"})
	if err != nil {
		a.Close()
		return "", nil, err, nil
	}
	defer c.Close()
	s, err := c.OpenSource(context.Background(), "/", "")
	if err != nil {
		return "", nil, err, nil
	}
	dst = filepath.Join(t.TempDir(), "dst")
	res, err = engine.Run(context.Background(), engine.Options{Kind: engine.Initial, Src: "evil:", Dst: dst, Source: s, StateDir: filepath.Join(t.TempDir(), "st")})
	return dst, res, nil, err
}

func file(path string, size int64) *manifest.Entry {
	return &manifest.Entry{Path: path, Type: manifest.TypeFile, Mode: 0o644, Size: size, Nlink: 1, Inode: 1}
}

func root() *manifest.Entry { return &manifest.Entry{Path: "", Type: manifest.TypeDir, Mode: 0o755} }

func literal(s string) func(*delta.OpWriter) {
	return func(w *delta.OpWriter) {
		w.Literal([]byte(s))
		w.End(int64(len(s)), hashOf(s))
	}
}

func hashOf(s string) uint64 {
	st, _ := delta.Diff(context.Background(), nil, strings.NewReader(s), delta.NewOpWriter(&bytes.Buffer{}))
	return st.Hash
}

// A symlink to a directory outside, then a file "beneath" it: refused, and
// nothing is written outside the destination.
func TestHostileSymlinkParent(t *testing.T) {
	outside := t.TempDir()
	h := &hostilePeer{entries: []*manifest.Entry{root(),
		{Path: "a", Type: manifest.TypeSymlink, Mode: 0o777, LinkTarget: outside, Size: int64(len(outside))},
		file("a/evil", 5)}, ops: literal("pwned")}
	dst, _, err := pullFromHostile(t, h)
	if !errors.Is(err, wire.ErrProtocol) || !strings.Contains(err.Error(), "outside any directory") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "evil")); err == nil {
		t.Fatal("a hostile peer wrote outside the destination")
	}
	if _, err := os.Lstat(filepath.Join(dst, "a", "evil")); err == nil {
		t.Fatal("file written beneath a symlink")
	}
}

// A scan that does not start with its root, and raw garbage: refused.
func TestHostileScans(t *testing.T) {
	for name, h := range map[string]*hostilePeer{
		"no root":   {entries: []*manifest.Entry{file("x", 5)}, ops: literal("hello")},
		"garbage":   {rawScan: []byte("MSYNCMAN\x01\x00\x03\x00not zstd at all"), ops: literal("hello")},
		"bad magic": {rawScan: []byte("../../../etc/passwd"), ops: literal("hello")},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := pullFromHostile(t, h)
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// File data that copies from outside the (empty) basis, or that does not
// hash to what its end announces, is never committed.
func TestHostileFileData(t *testing.T) {
	for name, ops := range map[string]func(*delta.OpWriter){
		"copy outside basis": func(w *delta.OpWriter) { w.Copy(0, 1<<40); w.End(5, 0) },
		"wrong hash":         func(w *delta.OpWriter) { w.Literal([]byte("hello")); w.End(5, 12345) },
		"too long":           literal("hello, longer than announced"),
	} {
		t.Run(name, func(t *testing.T) {
			dst, res, err := pullFromHostile(t, &hostilePeer{entries: []*manifest.Entry{root(), file("f", 5)}, ops: ops})
			if err != nil {
				t.Fatal(err)
			}
			if res.Stats.Failed != 1 {
				t.Fatalf("stats %+v, problems %+v", res.Stats, res.Problems)
			}
			if _, err := os.Stat(filepath.Join(dst, "f")); err == nil {
				t.Fatal("bad file data was committed")
			}
		})
	}
}

// A frame announcing a huge payload ends the connection with a clear error
// before anything is allocated for it. The frame follows the reply to
// open: the error may stop opening the source or the pass that follows.
func TestHostileHugeFrame(t *testing.T) {
	h := &hostilePeer{frame: wire.AppendHeader(nil, wire.TLog, 0, 1<<31), entries: []*manifest.Entry{root()}, ops: literal("x")}
	_, _, setupErr, err := pullFrom(t, h)
	if setupErr != nil {
		err = setupErr
	}
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v", err)
	}
}

// rawScan encodes entries in the manifest format without the writer's
// checks (and without compression), as a hostile peer may.
func rawScan(entries []*manifest.Entry) []byte {
	var body []byte
	prev := ""
	for _, e := range entries {
		shared := 0
		for shared < len(prev) && shared < len(e.Path) && prev[shared] == e.Path[shared] {
			shared++
		}
		var p []byte
		p = binary.AppendUvarint(p, uint64(shared))
		p = binary.AppendUvarint(p, uint64(len(e.Path)-shared))
		p = append(p, e.Path[shared:]...)
		p = append(p, byte(e.Type))
		for _, v := range []uint64{uint64(e.Mode), 0, 0, uint64(e.Size)} {
			p = binary.AppendUvarint(p, v)
		}
		p = binary.AppendVarint(p, 0) // mtime
		p = binary.AppendVarint(p, 0) // ctime
		for range 4 {
			p = binary.AppendUvarint(p, 0) // dev, inode, nlink, rdev
		}
		p = append(p, 0)    // flags
		p = append(p, 0, 0) // no link target, no xattrs
		body = append(body, 1)
		body = binary.AppendUvarint(body, uint64(len(p)))
		body = append(body, p...)
		prev = e.Path
	}
	sum := xxhash.Sum64(body)
	t := binary.AppendUvarint(nil, uint64(len(entries)))
	t = binary.LittleEndian.AppendUint64(t, sum)
	body = append(body, 0xFF)
	body = binary.AppendUvarint(body, uint64(len(t)))
	body = append(body, t...)
	hdr := []byte("MSYNCMAN\x01\x00")
	hdr = binary.LittleEndian.AppendUint16(hdr, manifest.FlagXXH64)
	return append(hdr, body...)
}

// Paths with "..", absolute paths and duplicates in a peer's scan are
// refused before anything is written; nothing appears outside DST.
func TestHostilePaths(t *testing.T) {
	// The encoder itself is checked: a clean raw scan is accepted.
	ok := rawScan([]*manifest.Entry{root(), file("f", 5)})
	if _, _, err := pullFromHostile(t, &hostilePeer{rawScan: ok, ops: literal("hello")}); err != nil {
		t.Fatalf("a well-formed raw scan was refused: %v", err)
	}
	for name, paths := range map[string][]string{
		"dot-dot":   {"../evil"},
		"deep":      {"a", "a/../../evil"},
		"absolute":  {"/tmp/evil"},
		"duplicate": {"f", "f"},
		"unsorted":  {"z", "a"},
	} {
		t.Run(name, func(t *testing.T) {
			es := []*manifest.Entry{root()}
			for _, p := range paths {
				if p == "a" {
					es = append(es, &manifest.Entry{Path: p, Type: manifest.TypeDir, Mode: 0o755})
				} else {
					es = append(es, file(p, 5))
				}
			}
			dst, _, err := pullFromHostile(t, &hostilePeer{rawScan: rawScan(es), ops: literal("hello")})
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("err = %v", err)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "evil")); err == nil {
				t.Fatal("written outside the destination")
			}
		})
	}
}

// rawSource serves root with Serve on one end of a pipe and returns the
// other end after the greetings and a source request, with the frames the
// server sends from then on.
func rawSource(t *testing.T, root string) (net.Conn, <-chan wire.Frame, <-chan error) {
	t.Helper()
	a, b := net.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- Serve(context.Background(), b, ServerConfig{Resolve: func(*wire.OpenRequest) (string, error) { return root, nil }})
	}()
	t.Cleanup(func() { a.Close() })
	if _, _, err := wire.Handshake(a, a, wire.Hello{Version: wire.Version, MinVersion: wire.MinVersion}); err != nil {
		t.Fatal(err)
	}
	open, _ := wire.EncodeJSON(wire.OpenRequest{Op: "source", Path: "/"})
	a.Write(append(wire.AppendHeader(nil, wire.TOpen, 0, len(open)), open...))
	frames := make(chan wire.Frame, 1024)
	go func() {
		defer close(frames)
		r := wire.NewReader(a)
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			f.Payload = append([]byte(nil), f.Payload...)
			select {
			case frames <- f:
			default: // a test that does not read them drops them
			}
		}
	}()
	select {
	case f := <-frames:
		if f.Type != wire.TOpenOK {
			t.Fatalf("open: got %s %q", f.Type, f.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to open")
	}
	return a, frames, served
}

// peakGrowth samples the heap and stacks in use until stop is closed and
// returns the most they grew above where they were at the start.
func peakGrowth(stop <-chan struct{}) func() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapInuse + m.StackInuse
	var peak uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if v := m.HeapInuse + m.StackInuse; v > base && v-base > peak {
				peak = v - base
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	return func() uint64 { <-done; return peak }
}

// Signature frames whose file request never comes are held up to a small
// budget per connection, then the connection is refused: 80 MiB of them
// (the old budget was 1 GiB) are never all held.
func TestHostileUnclaimedSignatures(t *testing.T) {
	conn, frames, served := rawSource(t, t.TempDir())
	stop := make(chan struct{})
	peak := peakGrowth(stop)
	chunk := bytes.Repeat([]byte{7}, wire.ChunkSize)
	go func() {
		// 80 requests' signatures of 1 MiB each, none followed by its request.
		for i := range 80 * (1 << 20) / len(chunk) {
			id := uint32(i*len(chunk)>>20) + 1
			if _, err := conn.Write(append(wire.AppendHeader(nil, wire.TSig, id, len(chunk)), chunk...)); err != nil {
				return
			}
		}
		// Then wait: the server must refuse on its own.
	}()
	var msg string
	timeout := time.After(20 * time.Second)
wait:
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				break wait
			}
			if f.Type == wire.TError {
				msg = string(f.Payload)
			}
		case <-timeout:
			break wait
		}
	}
	close(stop)
	grew := peak()
	conn.Close()
	<-served
	t.Logf("grew by %d MiB; error %q", grew>>20, msg)
	if !strings.Contains(msg, "signatures without their file request exceed") {
		t.Errorf("the server did not refuse unclaimed signatures (error %q)", msg)
	}
	if grew > 56<<20 {
		t.Fatalf("memory grew by %d MiB holding unclaimed signatures", grew>>20)
	}
}

// A scan request's worker count is the daemon's to bound: 600 hashing
// workers asked for take no more memory than the daemon's own maximum.
func TestHostileScanWorkers(t *testing.T) {
	root := t.TempDir()
	for i := range 50 {
		os.WriteFile(filepath.Join(root, fmt.Sprintf("f%02d", i)), bytes.Repeat([]byte{byte(i)}, 100<<10), 0o644)
	}
	conn, frames, served := rawSource(t, root)
	stop := make(chan struct{})
	peak := peakGrowth(stop)
	req, _ := wire.EncodeJSON(wire.ScanRequest{Hash: true, Workers: 600})
	conn.Write(append(wire.AppendHeader(nil, wire.TScanReq, 1, len(req)), req...))
	credit := wire.EncodeUvarints(1 << 30)
	conn.Write(append(wire.AppendHeader(nil, wire.TCredit, 1, len(credit)), credit...))
	ended := false
	timeout := time.After(30 * time.Second)
	for !ended {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("connection ended during the scan")
			}
			ended = f.Type == wire.TScanEnd
		case <-timeout:
			t.Fatal("the scan did not end")
		}
	}
	close(stop)
	grew := peak()
	conn.Close()
	<-served
	t.Logf("grew by %d MiB", grew>>20)
	if grew > 40<<20 {
		t.Fatalf("a scan asking for 600 workers grew memory by %d MiB", grew>>20)
	}
}

// The signatures of file requests waiting for a sender are bounded: past
// the budget, the connection is refused rather than holding them all.
func TestHostileQueuedSignatures(t *testing.T) {
	maxQueuedSig = 2 << 20
	hold := make(chan struct{})
	testHookSend = func() { <-hold }
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("data"), 0o644)
	conn, frames, served := rawSource(t, root)
	defer func() {
		close(hold)
		conn.Close()
		<-served
		maxQueuedSig = 256 << 20
		// testHookSend stays: the senders may still run, and the
		// closed channel holds nothing back.
	}()
	const blocks = 87_000 // about 1 MiB of sums
	sig, err := (&delta.Signature{BlockSize: delta.MinBlockSize, FileSize: blocks * delta.MinBlockSize,
		Weak: make([]uint32, blocks), Strong: make([]uint64, blocks)}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for id := uint32(1); id <= 12; id++ {
			for p := sig; len(p) > 0; {
				n := min(len(p), wire.ChunkSize)
				if _, err := conn.Write(append(wire.AppendHeader(nil, wire.TSig, id, n), p[:n]...)); err != nil {
					return
				}
				p = p[n:]
			}
			fetch := wire.EncodeFetch(&send.Request{Path: "f", Size: 4, Mode: send.Delta})
			if _, err := conn.Write(append(wire.AppendHeader(nil, wire.TFetch, id, len(fetch)), fetch...)); err != nil {
				return
			}
		}
	}()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("connection ended without an error")
			}
			if f.Type == wire.TError {
				if !strings.Contains(string(f.Payload), "MiB of signatures") {
					t.Fatalf("error %q", f.Payload)
				}
				return
			}
		case <-timeout:
			t.Fatal("12 MiB of queued signatures were held with a budget of 2 MiB")
		}
	}
}

// Work a daemon does for its client (reading and sending a file here,
// held back for longer than the idle timeout) is not the client's
// idleness: the pull completes.
func TestDaemonWorkIsNotIdleness(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "dst")
	os.WriteFile(filepath.Join(src, "f"), []byte("hello"), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go netx.Serve(ctx, ln, netx.Config{Idle: 400 * time.Millisecond}, func(ctx context.Context, nc net.Conn) error {
		return Serve(ctx, nc, ServerConfig{Resolve: func(*wire.OpenRequest) (string, error) { return src, nil },
			Busy: func() func() { return netx.Busy(ctx) }})
	})
	testHookSend = func() { time.Sleep(1500 * time.Millisecond) }
	defer func() { testHookSend = func() {} }()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConn(nc, Options{Name: "daemon"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.OpenSource(ctx, "/", "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := engine.Run(ctx, engine.Options{Kind: engine.Initial, Src: "daemon", Dst: dst, Source: s, StateDir: filepath.Join(t.TempDir(), "st")})
	if err != nil || res.Stats.Failed != 0 {
		t.Fatalf("pull: %v %+v", err, res)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != "hello" {
		t.Fatalf("f = %q", b)
	}
}
