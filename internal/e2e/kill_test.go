package e2e

import (
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/bench"
	"github.com/msync/msync/manifest"
)

// contents maps each path to every content hash (or symlink target) it has
// had at the source.
type contents map[string]map[string]bool

func recordContents(t *testing.T, root string, c contents) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		v, ok := contentOf(t, p, d)
		if !ok {
			return nil
		}
		if c[rel] == nil {
			c[rel] = map[string]bool{}
		}
		c[rel][v] = true
		return nil
	})
	must(t, err)
}

// contentOf returns what a regular file holds (its hash) or a symlink
// points to; ok is false for other objects.
func contentOf(t *testing.T, p string, d fs.DirEntry) (v string, ok bool) {
	switch {
	case d.Type().IsRegular():
		return hashOf(t, p), true
	case d.Type()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		return "->" + target, true
	}
	return "", false
}

func hashOf(t *testing.T, p string) string {
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	h := xxhash.New()
	_, err = io.Copy(h, f)
	must(t, err)
	return string(h.Sum(nil))
}

// checkNothingInvented fails if any file or symlink at dst, under its real
// name, holds something that was never at that path at the source, or if a
// committed manifest cannot be read back.
func checkNothingInvented(t *testing.T, dst, state string, allowed contents) (temps int) {
	t.Helper()
	tag, _ := os.ReadFile(filepath.Join(state, "temp-tag"))
	ownTemp := ".msync." + strings.TrimSpace(string(tag)) + "."
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dst, p)
		if len(tag) > 0 && strings.HasPrefix(d.Name(), ownTemp) && strings.HasSuffix(d.Name(), ".tmp") {
			temps++
			return nil
		}
		v, ok := contentOf(t, p, d)
		if !ok {
			return nil
		}
		if !allowed[rel][v] {
			t.Errorf("%s holds content that was never at the source", rel)
		}
		return nil
	})
	for _, side := range []string{"src", "dst"} {
		r, err := manifest.Open(filepath.Join(state, side+".manifest"))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatalf("state after kill: %v", err)
		}
		if _, err := manifest.ReadAll(r); err != nil {
			t.Fatalf("state after kill: %v", err)
		}
		r.Close()
	}
	return temps
}

// startMsync runs this test binary as msync with args, in its own process;
// done yields its Wait once it exits.
func startMsync(t *testing.T, args ...string) (cmd *exec.Cmd, done <-chan error) {
	t.Helper()
	cmd = exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MSYNC_E2E_MAIN=1")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	must(t, cmd.Start())
	c := make(chan error, 1)
	go func() { c <- cmd.Wait() }()
	return cmd, c
}

// killAt runs msync with args and SIGKILLs it after delay (or lets it
// finish). It returns whether the process was killed before it finished.
func killAt(t *testing.T, delay time.Duration, args ...string) bool {
	t.Helper()
	cmd, done := startMsync(t, args...)
	select {
	case <-done:
		return false
	case <-time.After(delay):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

func killPoints(seed uint64) []time.Duration {
	if os.Getenv("MSYNC_STRESS") != "" {
		r := rand.New(rand.NewPCG(seed, 50))
		var out []time.Duration
		for range 50 {
			out = append(out, time.Duration(r.IntN(400))*time.Millisecond)
		}
		return out
	}
	return []time.Duration{1 * time.Millisecond, 15 * time.Millisecond, 40 * time.Millisecond,
		80 * time.Millisecond, 130 * time.Millisecond, 200 * time.Millisecond}
}

// killThenComplete kills `msync kind` at every kill point, checking after
// each kill that nothing was invented, then lets a catch-up finish and
// checks the result is exact with no temp files left. It returns how many
// passes were killed before they finished.
func killThenComplete(t *testing.T, seed uint64, allowed contents, src, dst, st, kind string, flags ...string) (kills int) {
	t.Helper()
	for _, d := range killPoints(seed) {
		if killAt(t, d, append([]string{kind, src, dst, "--state", st}, flags...)...) {
			kills++
		}
		checkNothingInvented(t, dst, st, allowed)
	}
	if code, _, errOut := msync("catchup", src, dst, "--state", st); code != 0 {
		t.Fatalf("catchup after killed %s passes: exit %d: %s", kind, code, errOut)
	}
	if n := checkNothingInvented(t, dst, st, allowed); n != 0 {
		t.Errorf("%d temp files left after a completed pass", n)
	}
	mustRsyncClean(t, src, dst)
	mustVerify(t, src, dst)
	return kills
}

func TestKillAtAnyMoment(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	if _, err := bench.Gen(src, 11, 0.03); err != nil {
		t.Fatal(err)
	}
	allowed := contents{}
	recordContents(t, src, allowed)
	kills := killThenComplete(t, 1, allowed, src, dst, st, "initial", "--fsync=none")

	// Catch-up passes killed mid-way: old or new content, never a mix.
	if _, err := bench.Mutate(src, 11, 1); err != nil {
		t.Fatal(err)
	}
	recordContents(t, src, allowed)
	kills += killThenComplete(t, 2, allowed, src, dst, st, "catchup", "--delta=always")
	if kills == 0 {
		t.Fatal("no pass was killed before it finished: the kill points are too late for this machine")
	}
	t.Logf("%d passes killed mid-way, nothing invented, next pass completed", kills)
}
