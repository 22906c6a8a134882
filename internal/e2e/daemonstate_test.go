package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/transport/rsync"
)

// startListen runs `msync serve --listen` with module m at mod and the
// daemon's state root at sd; it returns the module's URL.
func startListen(t *testing.T, mod, sd string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	cmd, done := startMsync(t, "serve", "--listen", addr, "--module", "m="+mod, "--state-dir", sd)
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal("daemon did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "msync://" + addr + "/m"
}

// A daemon that cannot make its state root tells its client so without
// naming where it is (here beneath a regular file), in both daemons.
func TestDaemonStateRootErrorShowsNoHostPath(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	dbase, cl := t.TempDir(), t.TempDir()
	must(t, os.Mkdir(dbase+"/mod", 0o755))
	write(t, dbase+"/file", "", 0o644)
	write(t, cl+"/A/f", "a", 0o644)

	code, _, e := msync("initial", cl+"/A", startListen(t, dbase+"/mod", dbase+"/file/state")+"/x")
	if code == 0 || strings.Contains(e, dbase) {
		t.Errorf("push into serve --listen with a state root beneath a file: exit %d, want a failure naming no daemon path:\n%s", code, e)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var log bytes.Buffer
	srv := &rsync.Server{Modules: []rsync.Module{{Name: "data", Path: dbase + "/mod"}}, StateDir: dbase + "/file/state", Log: &log}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/y/", ln.Addr().(*net.TCPAddr).Port)
	code, out := stockRun(t, time.Minute, bin.Path, "-a", cl+"/A/", url)
	if code == 0 || strings.Contains(out, dbase) {
		t.Errorf("stock push into serve --rsync with a state root beneath a file: exit %d, want a failure naming no daemon path:\n%s", code, out)
	}
}

// A push of `msync initial` into a directory of serve --listen that was
// removed and made again starts over, and deletes nothing there on the
// word of the old directory's state.
func TestDaemonInitialIntoRecreatedDir(t *testing.T) {
	dbase, cl := t.TempDir(), t.TempDir()
	mod := dbase + "/mod"
	must(t, os.Mkdir(mod, 0o755))
	write(t, cl+"/A/keep", "a", 0o644)
	write(t, cl+"/A/gone", "b", 0o644)
	url := startListen(t, mod, dbase+"/state") + "/x"
	if code, _, e := msync("initial", cl+"/A", url); code != 0 {
		t.Fatalf("first push: exit %d: %s", code, e)
	}
	must(t, os.Remove(cl+"/A/gone"))
	// Moved aside, not removed: the new directory cannot reuse its inode.
	must(t, os.Rename(mod+"/x", dbase+"/x.old"))
	write(t, mod+"/x/gone", "someone else's", 0o644)
	code, _, e := msync("initial", cl+"/A", url)
	if code != 0 || !strings.Contains(e, "starts over") || strings.Contains(e, dbase) {
		t.Errorf("initial into the recreated directory: exit %d, want 0 and a note naming no daemon path:\n%s", code, e)
	}
	if b, err := os.ReadFile(mod + "/x/gone"); err != nil || string(b) != "someone else's" {
		t.Errorf("a file msync never put in the new directory: %q, %v", b, err)
	}
	if code, _, e := msync("catchup", cl+"/A", url); code != 0 {
		t.Errorf("catchup after the new start: exit %d: %s", code, e)
	}
}
