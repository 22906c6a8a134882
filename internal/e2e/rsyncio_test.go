package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/internal/rsynctest"
)

// stockRun runs a stock rsync client, bounded in time so that a hang
// fails the test instead of the CI job, and returns its exit code.
func stockRun(t *testing.T, limit time.Duration, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after %s (killed):\n%s", name, strings.Join(args, " "), limit, out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return 0, string(out)
}

// openToAll makes dir's parents traversable by an unprivileged user.
func openToAll(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		must(t, err)
		must(t, os.Chmod(d, fi.Mode().Perm()|0o005))
	}
}

// A stock client pushing into msync serve --rsync learns that files failed
// there: the error and exit 23, not 0 (the goodbye comes after the error).
func TestStockClientPushFailureExits23(t *testing.T) {
	needRoot(t, "chattr +i needs root")
	needTool(t, "chattr")
	for _, bin := range rsynctest.Binaries(t) {
		for _, via := range []string{"daemon", "ssh"} {
			t.Run(bin.Name+"/"+via, func(t *testing.T) {
				base := t.TempDir()
				write(t, base+"/src/ok", "fine", 0o644)
				write(t, base+"/src/locked/new", "cannot land", 0o644)
				must(t, os.MkdirAll(base+"/dst/locked", 0o755))
				// Even root cannot create a file in an immutable directory.
				if out, err := exec.Command("chattr", "+i", base+"/dst/locked").CombinedOutput(); err != nil {
					t.Fatalf("chattr +i: %v %s", err, out)
				}
				t.Cleanup(func() { exec.Command("chattr", "-i", base+"/dst/locked").Run() })
				args := []string{"-a", base + "/src/"}
				if via == "daemon" {
					args = append(args, fmt.Sprintf("rsync://127.0.0.1:%d/data/dst/", startRsyncServe(t, base)))
				} else {
					needSSHD(t)
					args = append(args, "-e", sshCommand(), "--rsync-path", "MSYNC_E2E_MAIN=1 XDG_STATE_HOME="+base+"/state "+os.Args[0]+" rsync-server",
						"127.0.0.1:"+base+"/dst/")
				}
				code, out := stockRun(t, 2*time.Minute, bin.Path, args...)
				if code != 23 || !strings.Contains(out, "dst/locked: operation not permitted") || (via == "daemon" && strings.Contains(out, base)) || !strings.Contains(out, "file(s) failed") {
					t.Fatalf("rsync push with a file the receiver cannot write: exit %d, want 23 and the error:\n%s", code, out)
				}
				if b, err := os.ReadFile(base + "/dst/ok"); err != nil || string(b) != "fine" {
					t.Errorf("the file that could land: %q %v", b, err)
				}
			})
		}
	}
}

// A stock client that cannot open the last file it lists sends nothing for
// it; msync serve --rsync finds that out (an end-of-phase marker) instead
// of waiting for ever, and the client exits 23.
func TestStockClientPushSkipsLastFile(t *testing.T) {
	needRoot(t, "needs root to run stock rsync as nobody")
	for _, bin := range rsynctest.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			base := t.TempDir()
			write(t, base+"/src/a", "readable", 0o644)
			write(t, base+"/src/zz", "unreadable", 0o000)
			openToAll(t, base+"/src")
			url := fmt.Sprintf("rsync://127.0.0.1:%d/data/dst/", startRsyncServe(t, base))
			code, out := stockRun(t, time.Minute, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
				bin.Path, "-rt", base+"/src/", url)
			if code != 23 || !strings.Contains(out, "zz") {
				t.Fatalf("rsync push with an unreadable last file: exit %d, want 23:\n%s", code, out)
			}
			if b, err := os.ReadFile(base + "/dst/a"); err != nil || string(b) != "readable" {
				t.Errorf("the readable file: %q %v", b, err)
			}
		})
	}
}

// A catch-up pushed into stock rsync deletes the paths the source deleted,
// whatever rsync's pattern characters their names hold (a name without
// "*?[" is compared as it is, backslash included; one with them is
// escaped for wildmatch), and nothing else: not the names such a pattern
// would match if it were taken as a pattern, nor what msync never put there.
func TestPushDeletesNamesWithPatternCharacters(t *testing.T) {
	gone := []string{`back\slash`, `tail\`, `st*r`, `q?m`, `br[a]ck`, `[x`, `a\*b`, `a\[b]`, `d\ir/f`, `d*r[/f`, `sub/in\ner`}
	kept := []string{`backslash`, `star`, `stxr`, `qam`, `brack`, `a*b`, `a\b`, `ab`, `a[b]`, `dir/f`, `sub/inner`, `sub/in\nerx`}
	for _, bin := range rsynctest.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			base := t.TempDir()
			src, dst, st := base+"/src", base+"/dst", base+"/state"
			for _, n := range append(append([]string{}, gone...), kept...) {
				write(t, filepath.Join(src, n), n, 0o644)
			}
			must(t, os.MkdirAll(dst, 0o755))
			write(t, dst+`/not\msync's`, "extraneous", 0o644)
			port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base})
			url := fmt.Sprintf("rsync://127.0.0.1:%d/data/dst", port)
			if code, _, e := msync("initial", src, url, "--state", st); code != 0 {
				t.Fatalf("initial: exit %d\n%s", code, e)
			}
			for _, n := range gone {
				must(t, os.Remove(filepath.Join(src, n)))
			}
			must(t, os.Remove(src+`/d\ir`))
			must(t, os.Remove(src+`/d*r[`))
			code, out, e := msync("catchup", src, url, "--state", st, "-i")
			if code != 0 {
				t.Fatalf("catch-up: exit %d\n%s%s", code, out, e)
			}
			for _, n := range append(gone, `d\ir`, `d*r[`) {
				if _, err := os.Lstat(filepath.Join(dst, n)); err == nil {
					t.Errorf("%q: deleted at the source, still at the destination\n%s", n, out)
				}
			}
			for _, n := range append(kept, `not\msync's`) {
				if _, err := os.Lstat(filepath.Join(dst, n)); err != nil {
					t.Errorf("%q: %v (must stay)", n, err)
				}
			}
		})
	}
}

// Stock clients' --exclude reaches msync serve --rsync as a bare pattern
// (protocol 27's exclude): pulls and pushes with --delete honour it.
func TestStockClientExcludeAgainstServe(t *testing.T) {
	for _, bin := range rsynctest.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			base := t.TempDir()
			for _, n := range []string{"keep", "a.tmp", "skip/x", "sub/b.tmp", "sub/c", "- dash"} {
				write(t, base+"/src/"+n, n, 0o644)
			}
			url := fmt.Sprintf("rsync://127.0.0.1:%d/data/", startRsyncServe(t, base))
			// A pattern that starts like a prefix goes as "- PATTERN".
			ex := []string{"--exclude", "*.tmp", "--exclude=/skip/", "--filter=- - dash"}
			code, out := stockRun(t, time.Minute, bin.Path, append(append([]string{"-a"}, ex...), url+"src/", base+"/pulled/")...)
			if code != 0 {
				t.Fatalf("pull with --exclude: exit %d\n%s", code, out)
			}
			for n, want := range map[string]bool{"keep": true, "sub/c": true, "a.tmp": false, "sub/b.tmp": false, "skip": false, "- dash": false} {
				if _, err := os.Lstat(base + "/pulled/" + n); (err == nil) != want {
					t.Errorf("pulled %s: %v, want present %v", n, err, want)
				}
			}
			write(t, base+"/dst/old.tmp", "excluded: not deleted", 0o644)
			write(t, base+"/dst/gone", "deleted", 0o644)
			code, out = stockRun(t, time.Minute, bin.Path, append(append([]string{"-a", "--delete"}, ex...), base+"/src/", url+"dst/")...)
			if code != 0 {
				t.Fatalf("push with --delete --exclude: exit %d\n%s", code, out)
			}
			for n, want := range map[string]bool{"keep": true, "sub/c": true, "old.tmp": true, "a.tmp": false, "gone": false, "skip": false} {
				if _, err := os.Lstat(base + "/dst/" + n); (err == nil) != want {
					t.Errorf("pushed %s: %v, want present %v", n, err, want)
				}
			}
		})
	}
}

// msyncWithin runs the CLI in-process and fails the test if it has not
// returned after limit (a hang fails here instead of timing out the job).
func msyncWithin(t *testing.T, limit time.Duration, args ...string) (int, string, string) {
	t.Helper()
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		c, o, e := msync(args...)
		done <- result{c, o, e}
	}()
	select {
	case r := <-done:
		return r.code, r.out, r.err
	case <-time.After(limit):
		t.Fatalf("msync %s: still running after %s", strings.Join(args, " "), limit)
		return 0, "", ""
	}
}

// A pull from stock rsync whose last file the sender cannot open (here: it
// runs as nobody and the file is mode 000) ends with exit 23 and every
// other file copied, over the daemon and over a remote shell.
func TestPullFromStockRsyncUnreadableLastFile(t *testing.T) {
	needRoot(t, "needs root to run stock rsync as nobody")
	for _, bin := range rsynctest.Binaries(t) {
		for _, via := range []string{"daemon", "shell"} {
			t.Run(bin.Name+"/"+via, func(t *testing.T) {
				base := t.TempDir()
				src, dst, st := base+"/src", base+"/dst", base+"/state"
				write(t, src+"/a", "readable", 0o644)
				write(t, src+"/d/b", "readable too", 0o644)
				write(t, src+"/zz", "unreadable", 0o000)
				openToAll(t, src+"/d")
				var args []string
				if via == "daemon" {
					port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base, ReadOnly: true, User: "nobody", Group: "nogroup"})
					args = []string{fmt.Sprintf("rsync://127.0.0.1:%d/data/src", port), dst}
				} else {
					rsh := base + "/rsh"
					write(t, rsh, "#!/bin/sh\nshift\nexec sh -c \"exec $*\"\n", 0o755)
					args = []string{"localhost:" + src, dst, "-e", rsh, "--rsync", "--rsync-path",
						"setpriv --reuid=nobody --regid=nogroup --clear-groups " + bin.Path}
				}
				for _, kind := range []string{"initial", "catchup"} {
					code, out, e := msyncWithin(t, time.Minute, append([]string{kind, "--state", st}, args...)...)
					if code != 23 || !strings.Contains(e, "zz") {
						t.Fatalf("%s: exit %d, want 23 naming zz\n%s%s", kind, code, out, e)
					}
				}
				for _, n := range []string{"a", "d/b"} {
					if _, err := os.Stat(filepath.Join(dst, n)); err != nil {
						t.Errorf("%s: %v", n, err)
					}
				}
			})
		}
	}
}
