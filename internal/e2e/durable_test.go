package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/msync/msync/bench"
	"github.com/msync/msync/sync/engine"
)

// killEnv names a step at which the msync process under test kills itself
// with SIGKILL: "op:N", right after the Nth time a pass made a name visible
// at the destination by op (rename, mkdir, special, link; see
// engine.TestHooks.AfterVisible). Only this test binary reads it.
const killEnv = "MSYNC_TEST_KILL_AT"

// armKillHook sets the hook killEnv asks for, in a process started by
// startMsync.
func armKillHook() {
	v := os.Getenv(killEnv)
	op, ns, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n <= 0 {
		return
	}
	var seen atomic.Int64
	engine.TestHooks.AfterVisible = func(o, _ string) {
		if o == op && seen.Add(1) == int64(n) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}

// runKilledAt runs msync with args in its own process, which kills itself
// at step (killEnv). It reports whether the process died of the kill.
func runKilledAt(t *testing.T, step string, args ...string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MSYNC_E2E_MAIN=1", killEnv+"="+step)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("msync %s (kill at %s): %v\n%s", strings.Join(args, " "), step, err, out)
	}
	return false
}

// emptyDir removes everything inside dir.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	for _, e := range ents {
		must(t, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
}

// extras counts what rsync --delete would delete at dst: names src does not
// have.
func extras(diff string) int {
	n := 0
	for _, l := range strings.Split(diff, "\n") {
		if strings.HasPrefix(l, "*deleting") {
			n++
		}
	}
	return n
}

// smallTree makes a source with every kind of name a pass makes visible:
// directories, files, symlinks, a fifo and hard links.
func smallTree(t *testing.T, src string) {
	t.Helper()
	for d := range 4 {
		for f := range 30 {
			write(t, fmt.Sprintf("%s/d%d/sub/f%02d", src, d, f), fmt.Sprintf("file %d/%d", d, f), 0o644)
		}
		must(t, os.Symlink("sub/f00", fmt.Sprintf("%s/d%d/link", src, d)))
	}
	must(t, syscall.Mkfifo(src+"/d0/fifo", 0o644))
	must(t, os.Link(src+"/d1/sub/f01", src+"/d2/hard1"))
	must(t, os.Link(src+"/d1/sub/f02", src+"/d3/hard2"))
}

// A pass killed right after it made a name visible at the destination
// (a file renamed into place, a directory, a symlink or fifo, a hard link)
// left that name for the next pass to attribute: once the source is
// emptied, the catch-up (or a new initial pass) leaves the destination
// empty too, exactly as rsync --delete would.
func TestKillRightAfterVisible(t *testing.T) {
	needTool(t, "rsync")
	for _, tc := range []struct{ step, next string }{
		{"rename:1", "catchup"}, {"rename:40", "catchup"}, {"mkdir:3", "catchup"},
		{"special:2", "catchup"}, {"link:1", "catchup"}, {"rename:7", "initial"},
	} {
		t.Run(strings.ReplaceAll(tc.step, ":", "")+"-"+tc.next, func(t *testing.T) {
			base := t.TempDir()
			src, dst, st := base+"/src", base+"/dst", base+"/state"
			smallTree(t, src)
			if !runKilledAt(t, tc.step, "initial", src, dst, "--state", st, "--fsync=none") {
				t.Fatalf("the initial pass finished: it never reached %s", tc.step)
			}
			emptyDir(t, src)
			if code, _, e := msync(tc.next, src, dst, "--state", st); code != 0 {
				t.Fatalf("%s after the kill: exit %d: %s", tc.next, code, e)
			}
			if d := rsyncDiff(t, src, dst); d != "" {
				t.Fatalf("killed at %s, source emptied, %s: %d names msync put at DST are left:\n%s", tc.step, tc.next, extras(d), d)
			}
			if code, _, e := msync("catchup", src, dst, "--state", st); code != 0 {
				t.Fatalf("a catch-up after the clean-up: exit %d: %s", code, e)
			}
		})
	}
}

// killStep returns the kill of round i of a pass of kind: a chosen step
// (right after renames above all) or a random moment.
func killStep(r *rand.Rand, i int, kind string) (step string, delay time.Duration) {
	if kind == "catchup" {
		// A catch-up after a mutation makes a few dozen names visible.
		if i%2 == 0 {
			return fmt.Sprintf("rename:%d", 1+r.IntN(20)), 0
		}
		return "", time.Duration(5+r.IntN(150)) * time.Millisecond
	}
	switch r.IntN(6) {
	case 0, 1:
		return fmt.Sprintf("rename:%d", 1+r.IntN(1500)), 0
	case 2:
		return fmt.Sprintf("mkdir:%d", 1+r.IntN(40)), 0
	case 3:
		return fmt.Sprintf("special:%d", 1+r.IntN(3)), 0
	case 4:
		return fmt.Sprintf("link:%d", 1+r.IntN(2)), 0
	}
	return "", time.Duration(5+r.IntN(400)) * time.Millisecond
}

// Rounds of: a pass killed at a step or a random moment, the source
// changed (emptied, or mutated with deletions), one catch-up; after each,
// the destination is exactly the source by rsync -aHX --delete -c -n -i:
// nothing missing, nothing extra. Under MSYNC_STRESS (make stress) rounds
// go on until at least 110 passes were killed.
func TestKillConvergence(t *testing.T) {
	needTool(t, "rsync")
	rounds, wantKills := 3, 1
	if os.Getenv("MSYNC_STRESS") != "" {
		rounds, wantKills = 250, 110
	}
	tmpl := t.TempDir() + "/tree"
	if _, err := bench.Gen(tmpl, 7, 0.01); err != nil {
		t.Fatal(err)
	}
	// Smaller, for many rounds: about 2,500 names of every kind.
	for _, p := range []string{"projects/repo01", "mailman/archives/private/list01", "mailman/archives/private/list01.mbox"} {
		must(t, os.RemoveAll(filepath.Join(tmpl, p)))
	}
	months, _ := filepath.Glob(tmpl + "/mailman/archives/private/list00/*-*")
	for _, m := range months[min(6, len(months)):] {
		must(t, os.RemoveAll(m))
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	start := time.Now()
	kills, left := 0, 0
	i := 0
	for ; i < rounds && (i < 3 || kills < wantKills); i++ {
		base := t.TempDir()
		src, dst, st := base+"/src", base+"/dst", base+"/state"
		if out, err := exec.Command("cp", "-a", tmpl, src).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v\n%s", err, out)
		}
		kind := "initial"
		if i%3 == 2 {
			// A catch-up killed after a change: its renames replace files.
			if code, _, e := msync("initial", src, dst, "--state", st, "--fsync=none"); code != 0 {
				t.Fatalf("initial: exit %d: %s", code, e)
			}
			if _, err := bench.Mutate(src, uint64(i), 1); err != nil {
				t.Fatal(err)
			}
			kind = "catchup"
		}
		step, delay := killStep(r, i, kind)
		args := []string{kind, src, dst, "--state", st, "--fsync=none"}
		var killed bool
		if step != "" {
			killed = runKilledAt(t, step, args...)
		} else {
			killed = killAt(t, delay, args...)
			step = delay.String()
		}
		if killed {
			kills++
		}
		change := "emptied"
		if i%2 == 0 {
			emptyDir(t, src)
		} else {
			change = "mutated"
			if _, err := bench.Mutate(src, uint64(i), 2); err != nil {
				t.Fatal(err)
			}
		}
		if code, _, e := msync("catchup", src, dst, "--state", st, "--fsync=none"); code != 0 {
			t.Fatalf("round %d: catch-up after %s killed at %s: exit %d: %s", i, kind, step, code, e)
		}
		if d := rsyncDiff(t, src, dst); d != "" {
			left += extras(d)
			t.Errorf("round %d: %s killed at %s (killed: %v), source %s, catch-up: DST differs (%d extras):\n%s", i, kind, step, killed, change, extras(d), d)
		}
		os.RemoveAll(base)
	}
	if kills < wantKills {
		t.Errorf("only %d of %d passes were killed before they finished", kills, i)
	}
	t.Logf("%d rounds, %d passes killed, %d extras left at DST, %s", i, kills, left, time.Since(start).Round(time.Second))
}
