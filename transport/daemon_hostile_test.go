package transport

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/remote"
)

// lockedLog is a daemon's log tests read while it runs.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startMsyncDaemon serves root as module "m" on loopback under lim.
func startMsyncDaemon(t *testing.T, root string, lim Limits) (string, *lockedLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := &lockedLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeListener(ctx, ln, &DaemonConfig{Modules: []Module{{Name: "m", Path: root}}, Log: log, Limits: lim})
	}()
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

func dialMsync(t *testing.T, addr string) *remote.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := remote.NewConn(nc, remote.Options{Name: "msync://" + addr + "/m"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scanModule lists the module through c.
func scanModule(ctx context.Context, c *remote.Conn) (int, error) {
	s, err := c.OpenSource(ctx, "m", "")
	if err != nil {
		return 0, err
	}
	sc, err := s.Scan(ctx, tree.ScanConfig{Hash: true})
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	n := 0
	for {
		_, err := sc.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// Beyond --max-connections a client is told so, in words it prints;
// once a connection ends, clients are served again.
func TestMsyncDaemonMaxConnections(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("data"), 0o644)
	addr, _ := startMsyncDaemon(t, root, Limits{MaxConns: 2})
	held := []*remote.Conn{dialMsync(t, addr), dialMsync(t, addr)}
	ctx := context.Background()
	_, err := scanModule(ctx, dialMsync(t, addr))
	if err == nil || !strings.Contains(err.Error(), "max connections (2) reached -- try again later") {
		t.Fatalf("third client: %v, want the daemon's max connections error", err)
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := scanModule(ctx, dialMsync(t, addr))
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served after a connection ended: %d entries, %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closedWithin reports whether the daemon closes nc within d.
func closedWithin(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// Clients silent before their greeting, silent after it, or silent once
// their request is served are dropped; garbage is refused; the daemon
// keeps serving, two clients at once.
func TestMsyncDaemonSilentAndGarbageClients(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("data"), 0o644)
	addr, log := startMsyncDaemon(t, root, Limits{Handshake: 300 * time.Millisecond, Idle: 600 * time.Millisecond})
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	if !closedWithin(dial(), 5*time.Second) {
		t.Error("a client silent from the start is still connected 5s later (handshake deadline 300ms)")
	}
	for _, junk := range []string{"GET / HTTP/1.0\r\n\r\n", "\x00\xff\xfe garbage\n", strings.Repeat("MSYNC", 100)} {
		nc := dial()
		io.WriteString(nc, junk)
		if !closedWithin(nc, 5*time.Second) {
			t.Errorf("garbage %.20q: still connected 5s later", junk)
		}
	}
	// Greeted, then silent where the request should come.
	c := dialMsync(t, addr)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("a client silent after the greetings is still connected 5s later (handshake deadline 300ms)")
	}
	// A source opened, then nothing asked of it.
	c = dialMsync(t, addr)
	if _, err := c.OpenSource(context.Background(), "m", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("an idle client is still connected 5s later (idle timeout 600ms)")
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := scanModule(context.Background(), dialMsync(t, addr)); err != nil || n != 2 {
				t.Errorf("client %d: %d entries, %v", i, n, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("daemon log:\n%s", log.String())
}
