package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuf is a child's output, read while it runs.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `msync serve ... --listen ADDR` (this test binary) under
// a shell that first runs prelude (e.g. "ulimit -n 40"), and returns the
// address once it accepts, its stderr and a channel closed at its exit.
func startServe(t *testing.T, prelude string, args ...string) (string, *syncBuf, *exec.Cmd, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	args = append([]string{"serve", "--listen", addr}, args...)
	cmd := exec.Command("sh", append([]string{"-c", prelude + `; exec "$0" "$@"`, os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), "MSYNC_E2E_MAIN=1")
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
	for range 250 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stderr, cmd, done
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the daemon did not start: %s", stderr.String())
	return "", nil, nil, nil
}

// Out of descriptors, both daemons keep accepting once some are free:
// accept4's EMFILE used to end the daemon.
func TestDaemonSurvivesEMFILE(t *testing.T) {
	rs := needTool(t, "rsync")
	for _, mode := range []string{"msync", "rsync"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir+"/f", "data\n", 0o644)
			args := []string{"--module", "m=" + dir}
			if mode == "rsync" {
				args = append(args, "--rsync")
			}
			addr, stderr, cmd, done := startServe(t, "ulimit -n 40", args...)
			var conns []net.Conn
			for range 80 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					break
				}
				conns = append(conns, c)
			}
			deadline := time.Now().Add(3 * time.Second)
			for !strings.Contains(stderr.String(), "too many open files") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			for _, c := range conns {
				c.Close()
			}
			defer func() {
				if !t.Failed() && !strings.Contains(stderr.String(), "too many open files") {
					t.Errorf("the daemon never ran out of descriptors: the test proves nothing; stderr:\n%s", stderr.String())
				}
			}()
			deadline = time.Now().Add(15 * time.Second)
			for {
				dst := t.TempDir() + "/dst"
				var err error
				var out []byte
				if mode == "rsync" {
					out, err = exec.Command(rs, "-r", "rsync://"+addr+"/m/", dst).CombinedOutput()
				} else if code, _, e := msync("initial", "msync://"+addr+"/m", dst, "--state", dst+".state"); code != 0 {
					err, out = fmt.Errorf("exit %d", code), []byte(e)
				}
				if err == nil {
					if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) == "data\n" {
						break
					}
				}
				select {
				case <-done:
					t.Fatalf("the daemon exited (%v); stderr:\n%s", cmd.ProcessState, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("not served once descriptors were free: %v %s; daemon stderr:\n%s", err, out, stderr.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// SIGTERM stops `msync serve --rsync` within seconds while clients are
// mid-transfer: one that stopped reading, one whose exclude rule (40 stars then
// Z) used to cost exponential time in the daemon, and one connected but
// silent (the daemon used to wait for its handshake to time out).
func TestRsyncDaemonSIGTERMUnderLoad(t *testing.T) {
	rs := needTool(t, "rsync")
	dir := t.TempDir()
	long := strings.Repeat("n", 150)
	for d := range 20 {
		for f := range 10 {
			write(t, fmt.Sprintf("%s/d%02d/%s%02d", dir, d, long, f), "x", 0o644)
		}
	}
	must(t, os.WriteFile(dir+"/big", nil, 0o644))
	must(t, os.Truncate(dir+"/big", 1<<30))
	addr, stderr, cmd, done := startServe(t, "true", "--rsync", "--module", "m="+dir)
	clients := []*exec.Cmd{
		exec.Command(rs, "-r", "rsync://"+addr+"/m/big", t.TempDir()),
		exec.Command(rs, "-r", "--exclude", strings.Repeat("*", 40)+"Z", "rsync://"+addr+"/m/", t.TempDir()),
	}
	for _, c := range clients {
		must(t, c.Start())
		defer func() {
			c.Process.Kill()
			c.Wait()
		}()
	}
	// The first client stops reading in the middle of the big file.
	time.Sleep(200 * time.Millisecond)
	must(t, clients[0].Process.Signal(syscall.SIGSTOP))
	silent, err := net.Dial("tcp", addr)
	must(t, err)
	defer silent.Close()
	time.Sleep(time.Second) // all under way
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-done:
	case <-time.After(8 * time.Second):
		t.Fatalf("msync serve --rsync still runs 8s after SIGTERM; stderr:\n%s", stderr.String())
	}
}
