package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/verify"
)

// runAsNobody runs the test binary as msync, as user nobody, and returns
// its combined output and exit code.
func runAsNobody(t *testing.T, base string, args ...string) (string, int) {
	t.Helper()
	exe := base + "/msync.test"
	if _, err := os.Stat(exe); err != nil {
		bin, err := os.ReadFile(os.Args[0])
		must(t, err)
		must(t, os.WriteFile(exe, bin, 0o755))
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "MSYNC_E2E_MAIN=1", "HOME=/tmp", "XDG_STATE_HOME="+base+"/xdg")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// A pass that is not root makes a read-only destination directory writable
// for itself; a directory swapped for a symlink since it was recorded (or
// scanned) must not have the symlink's target chmod'ed outside DST. The
// same path is reached by a client of `msync serve --listen` (a daemon not
// run as root): push a 0507 directory, push a symlink over it from another
// source name, then push the first source again with --trust-dest.
func TestReadOnlyDirSwappedForSymlinkIsNotChmodedThrough(t *testing.T) {
	needRoot(t, "needs root to run a pass as nobody")
	base, err := os.MkdirTemp("/tmp", "msync-nobody-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o777))
	src, dst, st, victim := base+"/src", base+"/dst", base+"/state", base+"/victim"
	write(t, src+"/file", "x", 0o644)
	must(t, os.Mkdir(src+"/d", 0o507))
	must(t, os.Chmod(src+"/d", 0o507))
	write(t, victim, "secret", 0o600)
	for _, p := range []string{src, src + "/file", src + "/d", victim} {
		must(t, os.Chown(p, 65534, 65534))
	}
	if out, code := runAsNobody(t, base, "initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d\n%s", code, out)
	}
	// Someone who can write in DST replaces the directory by a symlink.
	must(t, os.Remove(dst+"/d"))
	must(t, os.Symlink(victim, dst+"/d"))
	must(t, os.Lchown(dst+"/d", 65534, 65534))
	write(t, src+"/file2", "y", 0o644)
	must(t, os.Chown(src+"/file2", 65534, 65534))
	out, _ := runAsNobody(t, base, "catchup", "--trust-dest", src, dst, "--state", st)
	fi, err := os.Stat(victim)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("a file outside DST, reached through a symlink at DST, was chmod'ed to %04o (was 0600)\n%s", fi.Mode().Perm(), out)
	}
}

// Hard links between symlinks, fifos (any non-regular file) are copied as
// rsync -H copies them, and verify compares them: rsync -aH finds
// "hL t => s" / "hS q => p" where verify said IDENTICAL.
func TestHardLinkedSpecialsCopiedAndVerified(t *testing.T) {
	base := t.TempDir()
	src, dst := base+"/src", base+"/dst"
	must(t, os.Mkdir(src, 0o755))
	must(t, os.Symlink("target", src+"/s"))
	must(t, os.Link(src+"/s", src+"/t"))
	must(t, syscall.Mkfifo(src+"/p", 0o644))
	must(t, os.Link(src+"/p", src+"/q"))
	if code, _, e := msync("initial", src, dst, "--state", base+"/state"); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	// Whatever msync copied, verify must agree with rsync's judgement.
	d := rsyncDiff(t, src, dst)
	rep, err := verify.Run(context.Background(), verify.Options{Src: src, Dst: dst, Xattrs: true, Owners: isRoot()})
	must(t, err)
	if d != "" && rep.Identical {
		t.Errorf("msync verify says IDENTICAL where rsync -aHAX finds:\n%s", d)
	}
	if strings.TrimSpace(d) != "" {
		t.Errorf("the copy lost hard links between non-regular files:\n%s", d)
	}
}

// The state of a push into one stock rsync daemon is refused for another
// daemon on the same host (another port, another tree, same module name):
// taken for the same pair, a catch-up deletes there what msync never put
// there.
func TestStateOfAnotherDaemonPortRefused(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	write(t, base+"/src/keep", "a", 0o644)
	write(t, base+"/src/gone", "b", 0o644)
	must(t, os.Mkdir(base+"/d1", 0o755))
	must(t, os.Mkdir(base+"/d2", 0o755))
	p1 := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "m", Path: base + "/d1"})
	p2 := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "m", Path: base + "/d2"})
	st := base + "/state"
	if code, _, e := msync("initial", base+"/src", fmt.Sprintf("rsync://127.0.0.1:%d/m/", p1), "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	write(t, base+"/d2/gone", "someone else's", 0o644)
	must(t, os.Remove(base+"/src/gone"))
	code, _, e := msync("catchup", base+"/src", fmt.Sprintf("rsync://127.0.0.1:%d/m/", p2), "--state", st)
	if _, err := os.Stat(base + "/d2/gone"); err != nil {
		t.Fatalf("another daemon's file msync never put there was deleted (catch-up exit %d: %s)", code, e)
	}
	if code != 2 {
		t.Errorf("catch-up with another pair's state: exit %d, want 2: %s", code, e)
	}
}

// A directory of a serve --rsync module that was removed and made again
// (a client's own push --delete at the module's top, an admin's rm -rf)
// must not refuse every later push into it for good, and what the stock
// client is told must not show where the daemon keeps its state.
func TestServeRsyncPushIntoRecreatedDir(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	write(t, base+"/a/f", "a", 0o644)
	must(t, os.Mkdir(base+"/mod", 0o755))
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/", startRsyncServe(t, base+"/mod"))
	if code, out := stockRun(t, time.Minute, bin.Path, "-a", base+"/a/", url+"x/"); code != 0 {
		t.Fatalf("first push: exit %d\n%s", code, out)
	}
	// As a push --delete at the module's top would, the directory goes;
	// moved aside, not removed, so that the next cannot reuse its inode.
	must(t, os.Rename(base+"/mod/x", base+"/x.old"))
	code, out := stockRun(t, time.Minute, bin.Path, "-a", base+"/a/", url+"x/")
	if strings.Contains(out, os.TempDir()) {
		t.Errorf("the client is told a path on the daemon's host:\n%s", out)
	}
	if code != 0 {
		t.Errorf("push into the recreated directory: exit %d\n%s", code, out)
	}
}

// A pass into a directory inside another pass's destination (or around
// it) writes the same files: while one pass into dst runs, a pass into
// dst/sub must be refused as a second pass into dst is.
func TestNestedPassIntoRunningDestRefused(t *testing.T) {
	base := t.TempDir()
	srcA, srcB, dst := base+"/srcA", base+"/srcB", base+"/dst"
	write(t, srcA+"/sub/f", "from A", 0o644)
	write(t, srcB+"/g", "from B", 0o644)
	must(t, os.MkdirAll(dst+"/sub", 0o755))
	held, release := holdFirstPass(t)
	first := make(chan int, 1)
	go func() {
		code, _, _ := msync("initial", srcA, dst, "--state", base+"/stateA")
		first <- code
	}()
	<-held
	code, _, e := msync("initial", srcB, dst+"/sub", "--state", base+"/stateB")
	release()
	<-first
	if code != 2 || !strings.Contains(e, "another msync pass is writing") {
		t.Errorf("a pass into %s/sub while a pass into %s runs: exit %d, want 2:\n%s", dst, dst, code, e)
	}
}

// The same through `msync serve --listen` run as a user (not root): a
// client alone, with nothing but pushes, has the daemon chmod a file of
// the daemon's user outside the module (here its --auth-token-file) to
// 0707: push a 0507 directory d, push a symlink d -> token from another
// source name, push the first source again with --trust-dest.
func TestDaemonPushNeverChmodsOutsideModule(t *testing.T) {
	needRoot(t, "needs root to run a daemon as nobody")
	base, err := os.MkdirTemp("/tmp", "msync-nobody-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	mod, token := base+"/mod", base+"/token"
	must(t, os.Mkdir(mod, 0o755))
	must(t, os.Mkdir(base+"/state", 0o700))
	write(t, token, "tok\n", 0o600)
	for _, p := range []string{mod, base + "/state", token} {
		must(t, os.Chown(p, 65534, 65534))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	exe := base + "/msync.test"
	bin, err := os.ReadFile(os.Args[0])
	must(t, err)
	must(t, os.WriteFile(exe, bin, 0o755))
	cmd := exec.Command(exe, "serve", "--listen", addr, "--module", "m="+mod, "--state-dir", base+"/state", "--auth-token-file", token)
	cmd.Env = append(os.Environ(), "MSYNC_E2E_MAIN=1", "HOME=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var dlog strings.Builder
	cmd.Stdout, cmd.Stderr = &dlog, &dlog
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("daemon did not start: %v\n%s", err, dlog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cl := t.TempDir()
	write(t, cl+"/tok", "tok\n", 0o600)
	write(t, cl+"/A/file", "a", 0o644)
	must(t, os.Mkdir(cl+"/A/d", 0o507))
	must(t, os.Chmod(cl+"/A/d", 0o507))
	must(t, os.Mkdir(cl+"/B", 0o755))
	must(t, os.Symlink(token, cl+"/B/d"))
	url := "msync://" + addr + "/m/y"
	for _, c := range [][]string{
		{"initial", cl + "/A", url},
		{"initial", cl + "/B", url},
		{"catchup", "--trust-dest", cl + "/A", url},
	} {
		code, _, e := msync(append(c, "--auth-token-file", cl+"/tok")...)
		t.Logf("msync %s: exit %d %s", strings.Join(c, " "), code, e)
		write(t, cl+"/A/more", c[0], 0o644)
	}
	fi, err := os.Stat(token)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("a client's pushes had the daemon chmod %s, outside its module, to %04o (was 0600)", token, fi.Mode().Perm())
	}
}

// A destination inside the source is refused however it is named: here
// through a symlink to a directory of the source, DST not made yet.
func TestDestInsideSourceThroughSymlinkRefused(t *testing.T) {
	base := t.TempDir()
	src := base + "/src"
	write(t, src+"/sub/a", "a", 0o644)
	must(t, os.Symlink(src+"/sub", base+"/lnk"))
	code, _, e := msync("initial", src, base+"/lnk/copy", "--state", base+"/state")
	if _, err := os.Stat(src + "/sub/copy"); err == nil || code != 2 {
		t.Fatalf("a copy of SRC was made inside SRC (exit %d): %s", code, e)
	}
}

// What a client of `msync serve --listen` is told never shows where the
// daemon keeps its state: here a push into a module directory that was
// removed and made again since the last push.
func TestDaemonStateErrorsShowNoHostPath(t *testing.T) {
	base := t.TempDir()
	mod, sd := base+"/mod", base+"/daemon-state"
	must(t, os.Mkdir(mod, 0o755))
	write(t, base+"/A/f", "a", 0o644)
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
	url := "msync://" + addr + "/m/x"
	if code, _, e := msync("initial", base+"/A", url); code != 0 {
		t.Fatalf("first push: exit %d: %s", code, e)
	}
	// Moved aside, not removed: the new directory cannot reuse its inode.
	must(t, os.Rename(mod+"/x", base+"/x.old"))
	must(t, os.Mkdir(mod+"/x", 0o755))
	code, _, e := msync("catchup", base+"/A", url)
	t.Logf("catch-up: exit %d: %s", code, e)
	if strings.Contains(e, sd) || strings.Contains(e, mod) {
		t.Errorf("the client is told paths on the daemon's host (exit %d):\n%s", code, e)
	}
}
