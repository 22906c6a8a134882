package rsync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msync/msync/delta"
	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
)

// fakeRsh writes a remote shell that runs the command on this host, as
// ssh would on the far one, and records its process id in pidFile.
func fakeRsh(t *testing.T, pidFile string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rsh")
	script := "#!/bin/sh\nshift\necho $$ > " + pidFile + "\nexec sh -c \"exec $*\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// reachable makes root's parents traversable by the unprivileged user a
// stock sender runs as.
func reachable(t *testing.T, root string) {
	t.Helper()
	for d := root; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o005); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fetchAll asks for every regular file of the list in order and returns
// each answer's outcome, failing the test if any takes longer than limit.
func fetchAll(t *testing.T, c *Client, paths []string, limit time.Duration) map[string]*send.Result {
	t.Helper()
	ctx := context.Background()
	replies := make([]tree.Reply, len(paths))
	for i, p := range paths {
		var err error
		if replies[i], err = c.Fetch(ctx, &send.Request{Path: p}); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*send.Result{}
	deadline := time.After(limit)
	for i, p := range paths {
		done := make(chan *send.Result, 1)
		go func() {
			delta.Apply(ctx, bytes.NewReader(nil), delta.NewOpReader(replies[i], 0), io.Discard)
			res, _ := replies[i].Result()
			done <- res
		}()
		select {
		case res := <-done:
			out[p] = res
		case <-deadline:
			t.Fatalf("no answer for %q after %s: a request the sender skipped is waited for for ever", p, limit)
		}
	}
	return out
}

// A stock sender that cannot open a requested file sends nothing for it.
// Whether the file is the last one asked for or not, unreadable or gone
// since the list, its answer fails (a vanished one as a vanished file)
// and the others arrive; nothing waits for ever.
func TestPullStockSenderSkipsFile(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run as root: this test runs stock rsync as nobody")
		}
		t.Skip("SKIP: needs root to run stock rsync as nobody")
	}
	for _, bin := range rsynctest.Binaries(t) {
		for _, via := range []string{"daemon", "shell"} {
			for _, how := range []string{"unreadable", "vanished"} {
				t.Run(bin.Name+"/"+via+"/"+how, func(t *testing.T) {
					root := t.TempDir()
					for _, n := range []string{"a", "m/b", "zz"} {
						p := filepath.Join(root, n)
						os.MkdirAll(filepath.Dir(p), 0o755)
						if err := os.WriteFile(p, []byte("data of "+n), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					reachable(t, root)
					if how == "unreadable" {
						os.Chmod(filepath.Join(root, "zz"), 0)
						os.Chmod(filepath.Join(root, "a"), 0) // one in the middle too
					}
					var e Endpoint
					if via == "daemon" {
						port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "m", Path: root, ReadOnly: true, User: "nobody", Group: "nogroup"})
						e = Endpoint{Daemon: true, Host: "127.0.0.1", Port: port, Module: "m", Name: "rsync://m"}
					} else {
						e = Endpoint{Host: "localhost", Path: root, Rsh: fakeRsh(t, filepath.Join(t.TempDir(), "pid")),
							RsyncPath: "setpriv --reuid=nobody --regid=nogroup --clear-groups " + bin.Path, Name: "shell"}
					}
					var log bytes.Buffer
					c, err := Dial(context.Background(), e, Options{Log: &log})
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					if _, err := c.Scan(context.Background(), tree.ScanConfig{}); err != nil {
						t.Fatal(err)
					}
					if how == "vanished" {
						os.Remove(filepath.Join(root, "zz"))
						os.Remove(filepath.Join(root, "a"))
					}
					got := fetchAll(t, c, []string{"a", "m/b", "zz"}, 20*time.Second)
					if got["m/b"].Status != send.OK {
						t.Errorf("m/b: %+v", got["m/b"])
					}
					for _, p := range []string{"a", "zz"} {
						res := got[p]
						var pe *os.PathError
						vanished := errors.As(res.Err, &pe) && errors.Is(pe.Err, syscall.ENOENT) && pe.Op == "open"
						if res.Status != send.Failed || vanished != (how == "vanished") {
							t.Errorf("%s: %+v (vanished %v), want a failure, vanished %v\n%s", p, res, vanished, how == "vanished", log.String())
						}
					}
					// Over a remote shell, rsync's own exit code is the
					// shell's: 23, or 24 for a vanished file.
					err = c.Close()
					if want := map[string]string{"unreadable": "exit status 23", "vanished": "exit status 24"}[how]; via == "shell" && (err == nil || err.Error() != want) {
						t.Errorf("close: %v, want %s\n%s", err, want, log.String())
					} else if via == "daemon" && err != nil {
						t.Errorf("close: %v\n%s", err, log.String())
					}
				})
			}
		}
	}
}

// A sender that stops answering (here: stopped by a signal) is waited for
// only until the context given to Dial ends (msync's SIGINT and SIGTERM).
func TestPullEndsWithContext(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := Dial(ctx, Endpoint{Host: "localhost", Path: root, Rsh: fakeRsh(t, pidFile), RsyncPath: bin.Path, Name: "shell"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Scan(ctx, tree.ScanConfig{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGCONT)
	r, err := c.Fetch(ctx, &send.Request{Path: "f"})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		res, _ := r.Result()
		done <- res.Err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("answer after the context ended: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the answer is still awaited %s after the context ended", 10*time.Second)
	}
}

// Without any message naming a skipped request (a client sender pushing
// into serve --rsync says nothing over the wire), a quiet sender with
// requests pending is asked with the end-of-phase marker: the requests
// before it that it did not answer fail. If it is quiet again later, the
// run's last marker ends it: pending requests fail, later ones are
// refused; nothing waits for ever.
func TestSkippedRequestsFoundByMarkers(t *testing.T) {
	defer func(p, e time.Duration) { idleProbe, idleEnd = p, e }(idleProbe, idleEnd)
	idleProbe, idleEnd = 200*time.Millisecond, 600*time.Millisecond
	here, there := net.Pipe()
	defer here.Close()
	defer there.Close()
	markers := make(chan int, 4)
	go func() {
		// The sender: the list, then no answer to any file, only to markers.
		list := flistBytes([2]string{".", "dir"}, [2]string{"a", "file"}, [2]string{"b", "file"}, [2]string{"c", "file"})
		if _, err := there.Write(list); err != nil {
			return
		}
		d := &decoder{r: bufio.NewReader(there)}
		for n := 0; ; {
			ndx, err := d.int32()
			if err != nil {
				return
			}
			if ndx != -1 {
				for range 4 { // the sum head, no block sums
					d.int32()
				}
				continue
			}
			n++
			markers <- n
			if n <= 2 {
				binary.Write(there, binary.LittleEndian, int32(-1))
			}
		}
	}()
	c := &Client{name: "rsync-test", log: io.Discard, phase: make(chan struct{}, 4), finished: make(chan struct{}),
		kick: make(chan struct{}, 1), server: true, dec: &decoder{r: bufio.NewReader(here)},
		enc: &encoder{w: bufio.NewWriter(here)}, closer: func() error { return nil }, fields: allFields}
	if _, err := c.Scan(context.Background(), tree.ScanConfig{}); err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"a", "b"} {
		got := fetchAll(t, c, []string{p}, 5*time.Second)
		if got[p].Status != send.Failed {
			t.Errorf("%s: %+v, want a failure", p, got[p])
		}
		select {
		case n := <-markers:
			if n != i+1 {
				t.Errorf("after %s: marker %d, want %d", p, n, i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("after %s: no marker", p)
		}
	}
	if _, err := c.Fetch(context.Background(), &send.Request{Path: "c"}); err == nil || !strings.Contains(err.Error(), "ended") {
		t.Errorf("a request after the run ended: %v, want it refused", err)
	}
}

// msync rsync-server returns soon after its context ends (SIGINT,
// SIGTERM) even while it waits for a client that sends nothing.
func TestServeShellEndsWithContext(t *testing.T) {
	in, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeShell(ctx, struct{ io.Reader }{in}, io.Discard, []string{"--server", "-a", ".", t.TempDir()}, nil)
	}()
	time.AfterFunc(100*time.Millisecond, cancel)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ServeShell after its context ended: %v", err)
		}
	case <-time.After(shellGrace + 5*time.Second):
		t.Fatal("ServeShell still waits for its client after its context ended")
	}
}

// After the marker that asks a quiet sender what it skipped, requests go
// on in rsync's redo phase and are answered as before, deltas included,
// and the run ends cleanly with the sender's totals.
func TestPullRequestsAfterProbeMarker(t *testing.T) {
	for _, bin := range rsynctest.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			root := t.TempDir()
			old := bytes.Repeat([]byte("0123456789abcdef"), 40_000)
			nw := append(append([]byte{}, old...), "grown tail"...)
			for n, data := range map[string][]byte{"a": []byte("first"), "b": nw, "c": []byte("third")} {
				if err := os.WriteFile(filepath.Join(root, n), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pidFile := filepath.Join(t.TempDir(), "pid")
			var log bytes.Buffer
			c, err := Dial(context.Background(), Endpoint{Host: "localhost", Path: root, Rsh: fakeRsh(t, pidFile), RsyncPath: bin.Path, Name: "shell"}, Options{Log: &log})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Scan(context.Background(), tree.ScanConfig{}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(pidFile)
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			// Quiet with a request pending: the marker goes out.
			syscall.Kill(pid, syscall.SIGSTOP)
			r, err := c.Fetch(context.Background(), &send.Request{Path: "a"})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				c.wmu.Lock()
				m := c.markers
				c.wmu.Unlock()
				if m == 1 {
					break
				}
				if time.Now().After(deadline) {
					syscall.Kill(pid, syscall.SIGCONT)
					t.Fatal("no marker to a quiet sender with a request pending")
				}
				time.Sleep(50 * time.Millisecond)
			}
			syscall.Kill(pid, syscall.SIGCONT)
			var out bytes.Buffer
			if _, _, err := delta.Apply(context.Background(), bytes.NewReader(nil), delta.NewOpReader(r, 0), &out); err != nil || out.String() != "first" {
				t.Fatalf("a: %q %v\n%s", out.String(), err, log.String())
			}
			// The redo phase: a delta against the old copy, and a whole file.
			rb, err := c.Fetch(context.Background(), &send.Request{Path: "b", Mode: send.Delta, Basis: bytes.NewReader(old), BasisSize: int64(len(old))})
			if err != nil {
				t.Fatal(err)
			}
			out.Reset()
			if _, _, err := delta.Apply(context.Background(), bytes.NewReader(old), delta.NewOpReader(rb, int64(len(old))), &out); err != nil || !bytes.Equal(out.Bytes(), nw) {
				t.Fatalf("b after the marker: %d bytes, %v\n%s", out.Len(), err, log.String())
			}
			if res, _ := rb.Result(); res.Status != send.OK || res.Stats.Matched == 0 {
				t.Errorf("b after the marker: %+v, want a delta", res)
			}
			got := fetchAll(t, c, []string{"c"}, 10*time.Second)
			if got["c"].Status != send.OK {
				t.Errorf("c after the marker: %+v", got["c"])
			}
			if err := c.Close(); err != nil {
				t.Errorf("close: %v\n%s", err, log.String())
			}
			if c.stats.Size == 0 {
				t.Errorf("the sender's totals did not arrive: %+v", c.stats)
			}
		})
	}
}
