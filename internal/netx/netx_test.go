package netx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first accepts with errs, then accepts for real.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// echo answers one line per connection.
func echo(ctx context.Context, nc net.Conn) error {
	b := make([]byte, 64)
	n, err := nc.Read(b)
	if err != nil {
		return err
	}
	_, err = nc.Write(b[:n])
	return err
}

func roundTrip(t *testing.T, addr string) error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != "ping" {
		return errors.New("wrong answer " + string(b))
	}
	return nil
}

func serve(t *testing.T, ln net.Listener, cfg Config, h Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, cfg, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Serve did not return 10s after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// Out of descriptors, aborted connections: the loop backs off and goes on.
func TestAcceptErrorsAreTransient(t *testing.T) {
	ln := listen(t)
	fl := &flakyListener{Listener: ln, errs: []error{
		&net.OpError{Op: "accept", Err: syscall.EMFILE}, &net.OpError{Op: "accept", Err: syscall.EMFILE},
		&net.OpError{Op: "accept", Err: syscall.ENFILE}, &net.OpError{Op: "accept", Err: syscall.ECONNABORTED}}}
	var log bytes.Buffer
	var mu sync.Mutex
	stop := serve(t, fl, Config{Name: "test", Log: &lockedBuf{b: &log, mu: &mu}}, echo)
	if err := roundTrip(t, ln.Addr().String()); err != nil {
		t.Fatalf("after transient accept errors: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Contains(log.Bytes(), []byte("too many open files")) {
		t.Errorf("log %q does not report the accept error", log.String())
	}
}

type lockedBuf struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Beyond MaxConns, clients are told why and closed; once one leaves, the
// next is served. A panicking connection stops nothing.
func TestMaxConnsAndPanics(t *testing.T) {
	ln := listen(t)
	hold := make(chan struct{})
	entered := make(chan struct{}, 2) // a held connection is being served
	h := func(ctx context.Context, nc net.Conn) error {
		b := make([]byte, 4)
		if _, err := io.ReadFull(nc, b); err != nil {
			return err
		}
		switch string(b) {
		case "hold":
			entered <- struct{}{}
			<-hold
		case "boom":
			panic("boom")
		}
		_, err := nc.Write(b)
		return err
	}
	serve(t, ln, Config{MaxConns: 2, Refuse: func(nc net.Conn, max int) { nc.Write([]byte("full")) }}, h)
	addr := ln.Addr().String()
	for range 3 {
		c, _ := net.Dial("tcp", addr)
		c.Write([]byte("boom"))
		io.ReadAll(c)
		c.Close()
	}
	if err := roundTrip(t, addr); err != nil {
		t.Fatalf("after panics: %v", err)
	}
	// The round trip's handler may still hold its slot for a moment after
	// the client has its answer: a held client that was refused comes back.
	var held []net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for len(held) < 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("hold"))
		refused := make(chan string, 1)
		go func() { b, _ := io.ReadAll(c); refused <- string(b) }()
		select {
		case <-entered:
			held = append(held, c)
		case b := <-refused:
			c.Close()
			if b != "full" {
				t.Fatalf("held client %d got %q, want to be served or refused", len(held)+1, b)
			}
			if time.Now().After(deadline) {
				t.Fatal("the two held connections were not both served within 10 s")
			}
			time.Sleep(10 * time.Millisecond)
		case <-time.After(time.Until(deadline)):
			t.Fatal("the two held connections were not both served within 10 s")
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "full" {
		t.Fatalf("third client got %q, want the refusal", b)
	}
	close(hold)
	for _, c := range held {
		c.Close()
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		err := roundTrip(t, addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served after the others left: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A client that hangs up ends its connection's context; one that stays
// silent is dropped after the handshake deadline, or the idle time.
func TestHangupHandshakeIdle(t *testing.T) {
	ln := listen(t)
	ended := make(chan string, 4)
	h := func(ctx context.Context, nc net.Conn) error {
		b := make([]byte, 4)
		if _, err := io.ReadFull(nc, b); err != nil {
			ended <- "handshake: " + err.Error()
			return err
		}
		nc.SetDeadline(time.Time{})
		switch string(b) {
		case "work": // works without reading until its context ends
			<-ctx.Done()
			ended <- "work cancelled"
		case "idle":
			_, err := nc.Read(b)
			ended <- "idle"
			return err
		case "busy": // works silently for longer than idle, then answers
			time.Sleep(1500 * time.Millisecond)
			_, err := nc.Write(b)
			ended <- "busy"
			return err
		}
		return nil
	}
	serve(t, ln, Config{Handshake: 300 * time.Millisecond, Idle: 600 * time.Millisecond}, h)
	addr := ln.Addr().String()
	wait := func(what string) string {
		t.Helper()
		select {
		case s := <-ended:
			return s
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the connection was not ended", what)
		}
		return ""
	}

	c, _ := net.Dial("tcp", addr)
	c.Write([]byte("work"))
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	c.Close()
	if s := wait("hang-up"); s != "work cancelled" {
		t.Fatalf("hang-up: %s", s)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("hang-up noticed after %v (idle is 600ms)", d)
	}

	c, _ = net.Dial("tcp", addr)
	defer c.Close()
	if s := wait("silent client"); s[:10] != "handshake:" {
		t.Fatalf("silent client: %s", s)
	}

	c2, _ := net.Dial("tcp", addr)
	defer c2.Close()
	c2.Write([]byte("idle"))
	if s := wait("idle client"); s != "idle" {
		t.Fatalf("idle client: %s", s)
	}

	// Silent work that reads nothing is not idleness.
	c3, _ := net.Dial("tcp", addr)
	defer c3.Close()
	c3.Write([]byte("busy"))
	if s := wait("busy"); s != "busy" {
		t.Fatalf("busy: %s", s)
	}
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c3, make([]byte, 4)); err != nil {
		t.Fatalf("the answer after silent work: %v", err)
	}
}

// Stopping the daemon closes the connections and returns even when a
// handler ignores its context.
func TestStopWithStuckHandler(t *testing.T) {
	ln := listen(t)
	started := make(chan struct{})
	forever := make(chan struct{})
	defer close(forever)
	stop := serve(t, ln, Config{Grace: 200 * time.Millisecond}, func(ctx context.Context, nc net.Conn) error {
		close(started)
		<-forever
		return nil
	})
	c, _ := net.Dial("tcp", ln.Addr().String())
	defer c.Close()
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("connection not closed at stop: %v", err)
	}
}
