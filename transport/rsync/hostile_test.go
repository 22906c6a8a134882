package rsync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// notifyLog is a daemon's log that tests can wait on.
type notifyLog struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newNotifyLog() *notifyLog { return &notifyLog{wrote: make(chan struct{}, 1000)} }

func (l *notifyLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *notifyLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the log holds s.
func (l *notifyLog) waitFor(t *testing.T, s string, d time.Duration) bool {
	t.Helper()
	deadline := time.After(d)
	for !strings.Contains(l.String(), s) {
		select {
		case <-l.wrote:
		case <-deadline:
			return false
		}
	}
	return true
}

// startServer runs an rsync daemon serving root as module "m" (writable)
// on loopback, and returns its address.
func startServer(t *testing.T, root string, lim Limits) (string, *notifyLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := newNotifyLog()
	srv := &Server{Modules: []Module{{Name: "m", Path: root}}, Log: log, StateDir: t.TempDir(), Limits: lim}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the daemon did not stop")
		}
	})
	return ln.Addr().String(), log
}

// rawClient connects and, when args is not nil, asks module m for args
// and reads the checksum seed.
func rawClient(t *testing.T, addr string, args []string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	if args == nil {
		return c, br
	}
	fmt.Fprintf(c, "@RSYNCD: 27.0\nm\n")
	for _, want := range []string{"@RSYNCD: 27.0", "@RSYNCD: OK"} {
		l, err := readLine(br)
		if err != nil || l != want {
			t.Fatalf("daemon said %q (%v), want %q", l, err, want)
		}
	}
	fmt.Fprintf(c, "%s\n\n", strings.Join(args, "\n"))
	if _, err := io.ReadFull(br, make([]byte, 4)); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return c, br
}

// closedWithin reports whether the daemon closes c within d (reading and
// dropping what it sends before).
func closedWithin(c net.Conn, r io.Reader, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// A client that says nothing is dropped at the handshake deadline; one
// that stops talking after its request, at the idle timeout.
func TestDaemonDropsSilentClients(t *testing.T) {
	addr, _ := startServer(t, t.TempDir(), Limits{Handshake: 300 * time.Millisecond, Idle: 600 * time.Millisecond})
	c, br := rawClient(t, addr, nil)
	if !closedWithin(c, br, 5*time.Second) {
		t.Error("a client silent from the start is still connected 5s later (handshake deadline 300ms)")
	}
	// A pull request, then silence where the filter rules should come.
	c, br = rawClient(t, addr, []string{"--server", "--sender", "-r", ".", "m/"})
	if !closedWithin(c, br, 5*time.Second) {
		t.Error("a client silent after its request is still connected 5s later (idle timeout 600ms)")
	}
}

// Beyond --max-connections a stock client is turned away with rsyncd's
// message; once a connection ends, clients are served again.
func TestDaemonMaxConnections(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644)
	addr, _ := startServer(t, root, Limits{MaxConns: 2})
	var held []net.Conn
	for range 2 {
		c, br := rawClient(t, addr, nil)
		readLine(br) // greeting: the daemon has it
		held = append(held, c)
	}
	out, err := exec.Command("rsync", "rsync://"+addr+"/m/").CombinedOutput()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 5 || !strings.Contains(string(out), "@ERROR: max connections (2) reached -- try again later") {
		t.Fatalf("third client: exit %d (%v), output %q; want exit 5 and rsyncd's max connections error", code, err, out)
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		dst := t.TempDir()
		out, err := exec.Command("rsync", "-r", "rsync://"+addr+"/m/", dst).CombinedOutput()
		if _, serr := os.Stat(filepath.Join(dst, "f")); err == nil && serr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served after a connection ended: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Garbage does not disturb the daemon; two stock clients pulling at once
// both get the tree.
func TestDaemonGarbageAndRacingClients(t *testing.T) {
	root := makeTree(t)
	addr, _ := startServer(t, root, Limits{Handshake: time.Second})
	for _, junk := range []string{"GET / HTTP/1.0\r\n\r\n", "\x00\xff\xfe garbage", strings.Repeat("A", 10000) + "\n",
		"@RSYNCD: 27.0\nm\n--server\n--sender\n-r\n.\nm/\n\n\xff\xff\xff\x7f"} {
		c, br := rawClient(t, addr, nil)
		io.WriteString(c, junk)
		if !closedWithin(c, br, 10*time.Second) {
			t.Errorf("garbage %.20q: still connected", junk)
		}
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := filepath.Join(t.TempDir(), fmt.Sprint(i))
			if out, err := exec.Command("rsync", "-a", "rsync://"+addr+"/m/", dst).CombinedOutput(); err != nil {
				t.Errorf("client %d: %v\n%s", i, err, out)
				return
			}
			if out, err := exec.Command("diff", "-r", root, dst).CombinedOutput(); err != nil {
				t.Errorf("client %d: copy differs: %s", i, out)
			}
		}()
	}
	wg.Wait()
}

// heapPeak samples the heap in use until stop is closed and returns the
// most it grew above where it was at the start.
func heapPeak(stop <-chan struct{}) func() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > base && m.HeapInuse-base > peak.Load() {
				peak.Store(m.HeapInuse - base)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { <-done; return peak.Load() }
}

// writeHugeList sends a pushing client's file list of n files (no
// -o/-g/-l/-H: each entry is a few bytes on the wire).
func writeHugeList(w io.Writer, n int) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	le := func(v int32) { binary.Write(bw, binary.LittleEndian, v) }
	bw.WriteByte(xmitLongName)
	le(1)
	bw.WriteString(".")
	le(0)
	le(1700000000)
	le(sIFDIR | 0o755)
	for i := range n {
		name := fmt.Sprintf("f%08d", i)
		if i == 0 {
			bw.WriteByte(xmitSameTime)
		} else {
			bw.WriteByte(xmitSameTime | xmitSameMode)
		}
		bw.WriteByte(byte(len(name)))
		bw.WriteString(name)
		le(1)
		if i == 0 {
			le(sIFREG | 0o644)
		}
	}
	bw.WriteByte(0)
	le(0)
	return bw.Flush()
}

// A pushed file list is bounded by the memory it takes, before the
// authentication-free daemon holds it all: 300k entries (4.5 MB on the
// wire) grew the heap by hundreds of MB; with an 8 MiB budget the push is
// refused after about 8 MiB.
func TestDaemonFileListMemory(t *testing.T) {
	addr, log := startServer(t, t.TempDir(), Limits{FileList: 8 << 20})
	stop := make(chan struct{})
	peak := heapPeak(stop)
	c, br := rawClient(t, addr, []string{"--server", "-r", ".", "m/"})
	go io.Copy(io.Discard, br)
	werr := make(chan error, 1)
	go func() { werr <- writeHugeList(c, 300_000) }()
	refused := log.waitFor(t, "needs more than 8 MiB", 20*time.Second)
	close(stop)
	grew := peak()
	c.Close()
	<-werr
	if !refused {
		t.Errorf("the daemon did not refuse the list; log:\n%s", log.String())
	}
	t.Logf("heap grew by %d MiB", grew>>20)
	if grew > 48<<20 {
		t.Fatalf("the heap grew by %d MiB during a push of a huge file list (budget 8 MiB)", grew>>20)
	}
}

// entryCost is what a received entry really takes: a list of many short
// names is held in at most entryCost plus its names per entry.
func TestFileListEntryCost(t *testing.T) {
	const n = 100_000
	var b bytes.Buffer
	writeHugeList(&b, n)
	data := b.Bytes()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fl, _, err := readFileList(&decoder{r: bufio.NewReader(bytes.NewReader(data))}, listOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	runtime.KeepAlive(fl)
	t.Logf("%d bytes per entry held", per)
	if per > entryCost+16 {
		t.Fatalf("an entry takes %d bytes, the budget counts %d plus its name", per, entryCost)
	}
}

// A client that asks for costly filtering and leaves stops the work: the
// daemon's scan ends soon after the client hangs up.
func TestDaemonCancelsWorkOfAGoneClient(t *testing.T) {
	root := t.TempDir()
	long := strings.Repeat("n", 150)
	for d := range 200 {
		for f := range 10 {
			p := filepath.Join(root, fmt.Sprintf("d%03d", d), fmt.Sprintf("%s%02d", long, f))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	addr, log := startServer(t, root, Limits{})
	c, _ := rawClient(t, addr, []string{"--server", "--sender", "-r", ".", "m/"})
	var rules bytes.Buffer
	for range 16 {
		r := "- " + strings.Repeat("*", 4000) + "Z"
		binary.Write(&rules, binary.LittleEndian, int32(len(r)))
		rules.WriteString(r)
	}
	binary.Write(&rules, binary.LittleEndian, int32(0))
	c.Write(rules.Bytes())
	time.Sleep(300 * time.Millisecond) // the scan is under way
	c.Close()
	if !log.waitFor(t, addr[:strings.LastIndexByte(addr, ':')], 5*time.Second) {
		t.Fatalf("the daemon still works for a client gone 5s ago; log:\n%s", log.String())
	}
	t.Logf("log: %s", log.String())
}

// A receiver's announced block count costs memory only as its sums
// arrive: a head announcing 2M blocks, then silence, allocates nothing
// like the 100 MB the table would take.
func TestDaemonBlockSumsAllocatedAsTheyArrive(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("data"), 0o644)
	addr, _ := startServer(t, root, Limits{})
	c, br := rawClient(t, addr, []string{"--server", "--sender", "-r", ".", "m/"})
	go io.Copy(io.Discard, br)
	stop := make(chan struct{})
	peak := heapPeak(stop)
	var req bytes.Buffer
	for _, v := range []int32{0, 1, 1 << 21, 1 << 16, 16, 0} { // no rules; index 1 ("f"); count, blen, s2len, rem
		binary.Write(&req, binary.LittleEndian, v)
	}
	c.Write(req.Bytes())
	time.Sleep(time.Second)
	close(stop)
	grew := peak()
	t.Logf("heap grew by %d MiB", grew>>20)
	if grew > 16<<20 {
		t.Fatalf("a sum head announcing 2M blocks grew the heap by %d MiB before any sum arrived", grew>>20)
	}
}

// Two stock clients pushing into the same module at once: the pass's lock
// lets one land and refuses the other with a message; the copy is exact
// and the daemon serves on.
func TestDaemonRacingPushes(t *testing.T) {
	src := makeTree(t)
	dst := t.TempDir()
	addr, _ := startServer(t, dst, Limits{})
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command("rsync", "-rlt", src+"/", "rsync://"+addr+"/m/").CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !strings.Contains(outs[i], "another msync pass is running"):
			t.Errorf("push %d failed without saying why: %v\n%s", i, err, outs[i])
		}
	}
	if ok == 0 {
		t.Fatalf("neither push landed: %q", outs)
	}
	if out, err := exec.Command("rsync", "-rlt", src+"/", "rsync://"+addr+"/m/").CombinedOutput(); err != nil {
		t.Fatalf("a push after the race: %v\n%s", err, out)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("the copy differs: %s", out)
	}
}
