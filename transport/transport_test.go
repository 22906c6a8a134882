package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/remote"
	"github.com/msync/msync/transport/wire"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in         string
		kind       Kind
		user, host string
		port       int
		path       string
	}{
		{"/srv/mail", Local, "", "", 0, "/srv/mail"},
		{"./a:b", Local, "", "", 0, "./a:b"},
		{"dir/x:y", Local, "", "", 0, "dir/x:y"},
		{"old:/srv/mail", SSH, "", "old", 0, "/srv/mail"},
		{"root@old.example.org:lists", SSH, "root", "old.example.org", 0, "lists"},
		{"old:", SSH, "", "old", 0, "."},
		{"[::1]:/srv", SSH, "", "::1", 0, "/srv"},
		{"msync://old/mail", Daemon, "", "old", DefaultPort, "mail"},
		{"msync://127.0.0.1:9000/mail/lists/", Daemon, "", "127.0.0.1", 9000, "mail/lists"},
		{"msync://[::1]:9000/m", Daemon, "", "::1", 9000, "m"},
		{"rsync://old/srv", RsyncDaemon, "", "old", 873, "srv"},
		{"rsync://u@127.0.0.1:8730/srv/mail/", RsyncDaemon, "u", "127.0.0.1", 8730, "srv/mail"},
	} {
		e, err := Parse(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if e.Kind != c.kind || e.User != c.user || e.Host != c.host || e.Port != c.port || e.Path != c.path {
			t.Errorf("%s: got %+v", c.in, e)
		}
	}
	for _, bad := range []string{"msync://", "msync://host", "msync://host:x/m", "rsync://host", "rsync://host:x/m", "ftp://host/m", "@:x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A daemon opens what a client names beneath its module, never through a
// symlink nor outside it, creates what a push names there, and speaks of
// module paths only.
func TestDaemonResolve(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.Mkdir(filepath.Join(root, "d"), 0o755)
	os.WriteFile(filepath.Join(root, "f"), nil, 0o644)
	os.Symlink(outside, filepath.Join(root, "link"))
	d := &DaemonConfig{Modules: []Module{{Name: "m", Path: root}}}
	tg, err := d.resolve(&wire.OpenRequest{Op: "receive", Path: "m/d/new/x", Pass: &wire.PassOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	tg.Root.Close()
	if tg.Path != "m/d/new/x" || !tg.Created {
		t.Errorf("push into m/d/new/x: path %q, created %v", tg.Path, tg.Created)
	}
	if fi, err := os.Lstat(filepath.Join(root, "d/new/x")); err != nil || !fi.IsDir() {
		t.Errorf("push into m/d/new/x did not create it: %v", err)
	}
	for _, op := range []string{"source", "receive"} {
		for _, bad := range []string{"m/../x", "m/d/../../x", "m/link", "m/link/x", "m/d/./x", "m/f", "m/f/x"} {
			_, err := d.resolve(&wire.OpenRequest{Op: op, Path: bad, Pass: &wire.PassOptions{}})
			if err == nil {
				t.Errorf("%s %q accepted", op, bad)
			} else if strings.Contains(err.Error(), root) {
				t.Errorf("%s %q: the message shows the module's host path: %v", op, bad, err)
			}
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("something was created outside the module: %v", ents)
	}
}

// The daemon: a token compared in constant time, read-only modules,
// unknown modules, and a path escaping its module are all refused with
// clear errors; the right token works.
func TestDaemonRefusals(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("data"), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeListener(ctx, ln, &DaemonConfig{Token: "s3cret", Modules: []Module{{Name: "m", Path: root}, {Name: "ro", Path: root, ReadOnly: true}}})
	dial := func() *remote.Conn {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := remote.NewConn(nc, remote.Options{Name: "daemon"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct{ path, token, want string }{
		{"m", "", "authentication failed"},
		{"m", "s3cre", "authentication failed"},
		{"nope", "s3cret", `unknown module "nope"`},
		{"m/../etc", "s3cret", "path"},
	} {
		conn := dial()
		_, err := conn.OpenSource(ctx, c.path, c.token)
		conn.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("open %s with %q: %v, want %q", c.path, c.token, err, c.want)
		}
	}
	conn := dial()
	_, err = conn.Push(ctx, tree.NewLocal(t.TempDir()), "ro/x", "s3cret", remote.PushOptions{Kind: engine.Initial, SrcName: "t"}, remote.PushHandlers{})
	conn.Close()
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("push to a read-only module: %v", err)
	}
	conn = dial()
	defer conn.Close()
	s, err := conn.OpenSource(ctx, "ro", "s3cret")
	if err != nil {
		t.Fatalf("read-only module as a source: %v", err)
	}
	sc, err := s.Scan(ctx, tree.ScanConfig{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	n := 0
	for {
		e, err := sc.Next()
		if err != nil {
			break
		}
		if e.Path == "f" && !e.HasHash {
			t.Error("hashing scan without a hash")
		}
		n++
	}
	if n != 2 {
		t.Errorf("scan of the module returned %d entries, want 2", n)
	}
}

// shellPipe returns a pipe whose end for the server blocks, as a remote
// shell hands it to msync serve --stdio, and whose end for the client is
// non-blocking, as exec makes it. serverReads says which end is which.
func shellPipe(t *testing.T, serverReads bool) (r, w *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	client := p[0]
	if serverReads {
		client = p[1]
	}
	if err := unix.SetNonblock(client, true); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(p[0]), "pipe-r"), os.NewFile(uintptr(p[1]), "pipe-w")
}

func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

type pipeConn struct {
	*os.File // read end
	w        *os.File
}

func (p pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipeConn) Close() error                { p.w.Close(); return p.File.Close() }

// serve --stdio on pipes: served through the runtime poller (the pipes made
// non-blocking while it serves), blocking again once it is done, and the
// client sees the end when the server closes.
func TestServeStdioOnPipes(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("served"), 0o644); err != nil {
		t.Fatal(err)
	}
	inR, inW := shellPipe(t, true)    // client -> server
	outR, outW := shellPipe(t, false) // server -> client
	// Descriptors of the test's own that share the server's open pipes.
	watchIn, err := unix.Dup(int(inR.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(watchIn)
	watchOut, err := unix.Dup(int(outW.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ServeStdio(ctx, inR, outW, io.Discard) }()
	c, err := remote.NewConn(pipeConn{outR, inW}, remote.Options{Name: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	if !nonblocking(t, watchIn) || !nonblocking(t, watchOut) {
		t.Error("serving on pipes that still block")
	}
	s, err := c.OpenSource(ctx, root, "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.Scan(ctx, tree.ScanConfig{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		e, err := sc.Next()
		if err != nil {
			break
		}
		names = append(names, e.Path)
	}
	sc.Close()
	if strings.Join(names, ",") != ",f" {
		t.Errorf("scanned %q, want the root and f", names)
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeStdio still running after the client closed")
	}
	if nonblocking(t, watchIn) || nonblocking(t, watchOut) {
		t.Error("the pipes stayed non-blocking after serving")
	}
	// Both of the server's ends are closed: a client sees the end.
	if _, err := outW.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("server's reply end after serving: write = %v, want closed", err)
	}
	if _, err := inR.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("server's request end after serving: read = %v, want closed", err)
	}
	unix.Close(watchOut)
}
