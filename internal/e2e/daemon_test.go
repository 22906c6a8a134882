package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/msync/msync/bench"
)

// startDaemon runs `msync serve --listen` (this test binary) serving dir as
// module "m", and returns its address and a function that kills it.
func startDaemon(t *testing.T, dir string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return startDaemonAt(t, dir, addr)
}

// startDaemonAt is startDaemon on a given address: a daemon restarted where
// it was is the same end of the pair (its port is part of the identity).
func startDaemonAt(t *testing.T, dir, addr string) (string, func()) {
	t.Helper()
	cmd, done := startMsync(t, "serve", "--listen", addr, "--module", "m="+dir)
	var once sync.Once
	kill := func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL); <-done }) }
	t.Cleanup(kill)
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, kill
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("daemon did not start")
	return "", nil
}

// A daemon serves 8 clients at once, correctly, and stays up when clients
// are killed mid-stream; a daemon killed mid-stream leaves the client's
// DST consistent and the next pass completes it.
func TestDaemonUnderLoadAndKills(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, small := base+"/trees/src", base+"/trees/small"
	if _, err := bench.Gen(src, 31, 0.004); err != nil {
		t.Fatal(err)
	}
	if _, err := bench.GenTiny(small, 300); err != nil {
		t.Fatal(err)
	}
	write(t, small+"/big", strings.Repeat("mbox line\n", 500000), 0o644)
	allowed := contents{}
	recordContents(t, src, allowed)
	addr, killDaemon := startDaemon(t, base+"/trees")
	url, smallURL := "msync://"+addr+"/m/src", "msync://"+addr+"/m/small"

	var wg sync.WaitGroup
	errs := make([]string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := fmt.Sprintf("%s/c%d", base, i)
			if code, _, e := msync("initial", smallURL, d, "--state", d+".state"); code != 0 {
				errs[i] = fmt.Sprintf("client %d: exit %d: %s", i, code, e)
			}
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Error(e)
			continue
		}
		mustRsyncClean(t, small, fmt.Sprintf("%s/c%d", base, i))
	}

	// Clients killed mid-stream do not take the daemon down.
	killed := 0
	for i, d := range []time.Duration{30 * time.Millisecond, 80 * time.Millisecond, 150 * time.Millisecond} {
		dst := fmt.Sprintf("%s/k%d", base, i)
		if killAt(t, d, "initial", url, dst, "--state", dst+".state") {
			killed++
		}
	}
	if code, _, e := msync("initial", url, base+"/after", "--state", base+"/after.state"); code != 0 {
		t.Fatalf("daemon after %d killed clients: exit %d: %s", killed, code, e)
	}
	mustRsyncClean(t, src, base+"/after")

	// The daemon killed mid-stream: DST consistent, next pass completes.
	dst, st := base+"/victim", base+"/victim.state"
	done := make(chan int, 1)
	go func() {
		code, _, _ := msync("initial", url, dst, "--state", st, "--fsync=none")
		done <- code
	}()
	time.Sleep(60 * time.Millisecond)
	killDaemon()
	code := <-done
	if code == 0 {
		t.Fatal("the pull finished before its daemon was killed: kill point too late for this machine")
	}
	checkNothingInvented(t, dst, st, allowed)
	addr2, _ := startDaemonAt(t, base+"/trees", addr)
	if c, _, e := msync("catchup", "msync://"+addr2+"/m/src", dst, "--state", st); c != 0 {
		t.Fatalf("catchup after the daemon was killed (first pass exit %d): exit %d: %s", code, c, e)
	}
	if n := checkNothingInvented(t, dst, st, allowed); n != 0 {
		t.Errorf("%d temp files left", n)
	}
	mustRsyncClean(t, src, dst)
	t.Logf("8 concurrent clients correct; %d clients killed, daemon stayed up; daemon killed (client exit %d), next pass completed", killed, code)
}
