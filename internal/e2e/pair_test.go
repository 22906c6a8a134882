package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport"
	"github.com/msync/msync/transport/remote"
)

// snapshot copies dir aside (cp -a), to show later that nothing changed.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	snap := t.TempDir() + "/snap"
	if out, err := exec.Command("cp", "-a", dir, snap).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s: %v\n%s", dir, err, out)
	}
	return snap
}

// The state directory of pair A used for pair B is refused (exit 2, the
// state directory and both pairs named) before anything is done at B's
// destination: A's source manifest would have B's catch-up delete an
// admin's file msync never put there, and A's destination manifest,
// trusted, would hide what B's destination holds.
func TestStateOfAnotherPairRefused(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	srcA, dstA, stA := base+"/srcA", base+"/dstA", base+"/stateA"
	srcB, dstB, stB := base+"/srcB", base+"/dstB", base+"/stateB"
	write(t, srcA+"/keep", "a", 0o644)
	write(t, srcA+"/admin.conf", "A's file", 0o644)
	write(t, srcB+"/keep", "b", 0o644)
	write(t, srcB+"/gone", "b", 0o644)
	for _, p := range [][3]string{{srcA, dstA, stA}, {srcB, dstB, stB}} {
		if code, _, e := msync("initial", p[0], p[1], "--state", p[2]); code != 0 {
			t.Fatalf("initial %s: exit %d: %s", p[0], code, e)
		}
	}
	// At B's destination, an admin's file of the same name as one of A's.
	write(t, dstB+"/admin.conf", "the admin's, not msync's", 0o600)
	must(t, os.Remove(srcB+"/gone"))

	check := func(t *testing.T, args ...string) {
		t.Helper()
		before := snapshot(t, dstB)
		code, _, e := msync(args...)
		if code != 2 || !strings.Contains(e, "belongs to another pair") || !strings.Contains(e, srcA) || !strings.Contains(e, srcB) {
			t.Errorf("msync %s: exit %d, want 2 and a refusal naming both pairs:\n%s", strings.Join(args, " "), code, e)
		}
		if d := rsyncDiff(t, before, dstB); d != "" {
			t.Errorf("B's destination changed:\n%s", d)
		}
	}
	t.Run("src.manifest", func(t *testing.T) {
		check(t, "catchup", srcB, dstB, "--state", stA)
	})
	t.Run("dst.manifest/trust-dest", func(t *testing.T) {
		// B's own state, with A's destination manifest in it.
		st := base + "/mixed"
		must(t, exec.Command("cp", "-a", stB, st).Run())
		must(t, exec.Command("cp", stA+"/dst.manifest", st+"/dst.manifest").Run())
		check(t, "catchup", srcB, dstB, "--state", st, "--trust-dest")
	})
	// B's own state still works, and its catch-up deletes what B's source
	// deleted, never the admin's file.
	if code, _, e := msync("catchup", srcB, dstB, "--state", stB, "--trust-dest"); code != 0 {
		t.Fatalf("catchup with B's own state: exit %d: %s", code, e)
	}
	if _, err := os.Stat(dstB + "/gone"); !os.IsNotExist(err) {
		t.Errorf("B's catch-up kept the file B's source deleted: %v", err)
	}
	if b, err := os.ReadFile(dstB + "/admin.conf"); err != nil || string(b) != "the admin's, not msync's" {
		t.Errorf("the admin's file: %q, %v", b, err)
	}
}

// A state directory written before manifests recorded their pair is read
// as before, and its next pass (even one that changes nothing) records
// the pair: then another pair is refused.
func TestStateWithoutPairAdopted(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/f", "x", 0o644)
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	for _, side := range []string{"src", "dst"} {
		stripIdentity(t, st+"/"+side+".manifest")
	}
	if code, _, e := msync("catchup", src, dst, "--state", st); code != 0 {
		t.Fatalf("catchup over manifests without a pair: exit %d: %s", code, e)
	}
	for _, side := range []string{"src", "dst"} {
		r, err := manifest.Open(st + "/" + side + ".manifest")
		must(t, err)
		if r.Identity() == nil {
			t.Errorf("%s.manifest records no pair after a catch-up", side)
		}
		r.Close()
	}
	write(t, base+"/other/f", "y", 0o644)
	if code, _, e := msync("catchup", base+"/other", dst, "--state", st); code != 2 || !strings.Contains(e, "belongs to another pair") {
		t.Errorf("another source with the adopted state: exit %d: %s", code, e)
	}
}

// stripIdentity writes a manifest again as manifests were written before
// they recorded their pair.
func stripIdentity(t *testing.T, path string) {
	t.Helper()
	r, err := manifest.Open(path)
	must(t, err)
	es, err := manifest.ReadAll(r)
	must(t, err)
	r.Close()
	f, err := os.Create(path)
	must(t, err)
	w, err := manifest.NewStateWriter(f)
	must(t, err)
	for _, e := range es {
		must(t, w.Add(e))
	}
	must(t, w.Close())
	must(t, f.Close())
}

// holdFirstPass makes the first pass that locks its destination wait
// there until release is called; held is closed once it waits. Later
// passes go on.
func holdFirstPass(t *testing.T) (held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	var rel sync.Once
	engine.TestHooks.DestLocked = func(string) {
		if first.CompareAndSwap(false, true) {
			close(h)
			<-r
		}
	}
	release = func() { rel.Do(func() { close(r) }) }
	t.Cleanup(func() {
		release()
		engine.TestHooks.DestLocked = nil
	})
	return h, release
}

// Two passes into one destination at once, each with its own state
// directory: the second fails at once (exit 2, naming DST) and the
// destination is exactly the first one's source.
func TestSecondPassIntoOneDestRefused(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	srcA, srcB, dst := base+"/srcA", base+"/srcB", base+"/dst"
	write(t, srcA+"/f", "from A", 0o644)
	write(t, srcA+"/onlyA", "a", 0o644)
	write(t, srcB+"/f", "from B, longer", 0o644)
	write(t, srcB+"/onlyB", "b", 0o644)
	must(t, os.Mkdir(dst, 0o755))
	held, release := holdFirstPass(t)
	first := make(chan string, 1)
	go func() {
		code, _, e := msync("initial", srcA, dst, "--state", base+"/stateA")
		if code == 0 {
			e = ""
		}
		first <- fmt.Sprint(code, ": ", e)
	}()
	<-held
	code, _, e := msync("initial", srcB, dst, "--state", base+"/stateB")
	if code != 2 || !strings.Contains(e, "another msync pass is writing to this destination") || !strings.Contains(e, dst) {
		t.Errorf("second pass: exit %d, want 2 naming %s:\n%s", code, dst, e)
	}
	release()
	if e := <-first; e != "0: " {
		t.Fatalf("first pass: exit %s", e)
	}
	mustRsyncClean(t, srcA, dst)
}

// The same through the msync daemon: two pushes into one module path at
// once; the daemon runs both passes, the second fails.
func TestSecondDaemonPushRefused(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	srcA, srcB, dst := base+"/srcA", base+"/srcB", base+"/dst"
	write(t, srcA+"/f", "from A", 0o644)
	write(t, srcA+"/onlyA", "a", 0o644)
	write(t, srcB+"/f", "from B, longer", 0o644)
	write(t, srcB+"/onlyB", "b", 0o644)
	url := daemonURL(t, "tmp", dst)
	held, release := holdFirstPass(t)
	first := make(chan string, 1)
	go func() {
		code, _, e := msync("initial", srcA, url)
		if code == 0 {
			e = ""
		}
		first <- fmt.Sprint(code, ": ", e)
	}()
	<-held
	code, _, e := msync("initial", srcB, url)
	if code != 2 || !strings.Contains(e, "another msync pass is writing to this destination") {
		t.Errorf("second push: exit %d, want 2:\n%s", code, e)
	}
	release()
	if e := <-first; e != "0: " {
		t.Fatalf("first push: exit %s", e)
	}
	mustRsyncClean(t, srcA, dst)
}

// The TCP daemon never keeps a push's state where the client says: a
// state directory on the wire is refused and nothing is made there; the
// CLI does not send its --state to a daemon; the daemon keeps the state
// beneath its own root, one directory per module, path and source.
func TestDaemonChoosesStateDir(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, asked := base+"/src", base+"/dst", base+"/client-chose"
	write(t, src+"/f", "x", 0o644)
	url := daemonURL(t, "tmp", dst)
	e, err := transport.Parse(url)
	must(t, err)
	tr, err := transport.Open(context.Background(), e, transport.DialOptions{})
	must(t, err)
	local := tree.NewLocal(src)
	defer local.Close()
	_, err = tr.Push(context.Background(), local, e.Path, remote.PushOptions{Kind: engine.Initial, SrcName: "test:" + src, StateDir: asked}, remote.PushHandlers{})
	tr.Close()
	if err == nil || !strings.Contains(err.Error(), "cannot choose") {
		t.Errorf("a push naming its state directory: %v, want a refusal", err)
	}
	if _, err := os.Lstat(asked); !os.IsNotExist(err) {
		t.Errorf("the daemon made the client's state directory: %v", err)
	}

	code, _, errOut := msync("initial", src, url, "--state", asked)
	if code != 0 || !strings.Contains(errOut, "not used") {
		t.Fatalf("push with --state: exit %d, want 0 and a note:\n%s", code, errOut)
	}
	if _, err := os.Lstat(asked); !os.IsNotExist(err) {
		t.Errorf("--state %s was made on the daemon's side: %v", asked, err)
	}
	mustRsyncClean(t, src, dst)
	rel := strings.TrimPrefix(e.Path, "tmp/")
	abs, _ := filepath.Abs(src)
	host, _ := os.Hostname()
	sd, err := state.ModuleDir(daemon.state, "tmp", rel, host+":"+abs)
	must(t, err)
	if _, err := os.Stat(sd + "/src.manifest"); err != nil {
		t.Errorf("no state beneath the daemon's root where ModuleDir says: %v", err)
	}
}

// A destination removed and made again since the last pass holds nothing
// the state records: the state's names would have a catch-up delete
// files msync never put there (here the admin's "gone", named like a file
// msync copied into the old directory and the source deleted since). A
// catch-up is refused, telling to run initial; an initial pass starts
// over from empty state and deletes nothing; after it, catch-ups go on.
// The same when the destination was removed and not made again.
func TestRecreatedDestStartsOver(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/keep", "a", 0o644)
	write(t, src+"/gone", "b", 0o644)
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	must(t, os.Remove(src+"/gone"))
	// Moved aside, not removed: the new directory cannot reuse its inode.
	must(t, os.Rename(dst, base+"/dst.old"))
	write(t, dst+"/gone", "the admin's, not msync's", 0o644)

	for _, args := range [][]string{{"catchup"}, {"catchup", "--trust-dest"}, {"catchup", "--dry-run"}} {
		before := snapshot(t, dst)
		code, _, e := msync(append(args, src, dst, "--state", st)...)
		if code != 2 || !strings.Contains(e, "removed (or removed and made again)") || !strings.Contains(e, "msync initial") {
			t.Errorf("msync %s into the recreated destination: exit %d, want 2 and a refusal telling to run initial:\n%s", strings.Join(args, " "), code, e)
		}
		if d := rsyncDiff(t, before, dst); d != "" {
			t.Errorf("msync %s changed the destination:\n%s", strings.Join(args, " "), d)
		}
	}
	if code, _, e := msync("initial", "--dry-run", src, dst, "--state", st); code != 0 || !strings.Contains(e, "starts over") {
		t.Errorf("initial --dry-run: exit %d, want 0 and a note:\n%s", code, e)
	}
	code, _, e := msync("initial", src, dst, "--state", st)
	if code != 0 || !strings.Contains(e, "starts over") {
		t.Fatalf("initial into the recreated destination: exit %d, want 0 and a note:\n%s", code, e)
	}
	if b, err := os.ReadFile(dst + "/gone"); err != nil || string(b) != "the admin's, not msync's" {
		t.Errorf("the admin's file in the recreated destination: %q, %v", b, err)
	}
	if b, err := os.ReadFile(dst + "/keep"); err != nil || string(b) != "a" {
		t.Errorf("keep: %q, %v", b, err)
	}
	write(t, src+"/new", "c", 0o644)
	if code, _, e := msync("catchup", src, dst, "--state", st); code != 0 {
		t.Fatalf("catchup after the initial pass: exit %d: %s", code, e)
	}
	if _, err := os.Stat(dst + "/gone"); err != nil {
		t.Errorf("the catch-up after the new start deleted the admin's file: %v", err)
	}

	// Removed, not made again: a catch-up makes nothing.
	must(t, os.Rename(dst, base+"/dst.old2"))
	if code, _, e := msync("catchup", src, dst, "--state", st); code != 2 || !strings.Contains(e, "msync initial") {
		t.Errorf("catchup into the removed destination: exit %d, want 2:\n%s", code, e)
	}
	if _, err := os.Lstat(dst); !os.IsNotExist(err) {
		t.Errorf("the refused catch-up made the destination: %v", err)
	}
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial into the removed destination: exit %d: %s", code, e)
	}
	mustRsyncClean(t, src, dst)
}

// State written when the pair record left remote ends' ports out (no
// version) is not refused after an upgrade: it is read as the pair it
// named then, and the next commit records the port, after which another
// daemon's port is refused.
func TestStateOfVersion1AdoptsPort(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	write(t, base+"/src/f", "a", 0o644)
	must(t, os.Mkdir(base+"/d1", 0o755))
	must(t, os.Mkdir(base+"/d2", 0o755))
	p1 := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "m", Path: base + "/d1"})
	p2 := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "m", Path: base + "/d2"})
	st, url := base+"/state", fmt.Sprintf("rsync://127.0.0.1:%d/m/", p1)
	if code, _, e := msync("initial", base+"/src", url, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	// As the previous release recorded the pair: no version, no port.
	src, err := state.LocalEnd(base + "/src")
	must(t, err)
	v1, err := json.Marshal(map[string]any{"src": src, "dst": map[string]string{"host": "127.0.0.1", "path": "rsync://m/"}})
	must(t, err)
	for _, side := range []string{"src", "dst"} {
		setIdentity(t, st+"/"+side+".manifest", v1)
	}
	write(t, base+"/src/g", "b", 0o644)
	if code, _, e := msync("catchup", base+"/src", url, "--state", st); code != 0 {
		t.Fatalf("catchup over a version 1 record: exit %d: %s", code, e)
	}
	for _, side := range []string{"src", "dst"} {
		r, err := manifest.Open(st + "/" + side + ".manifest")
		must(t, err)
		var p state.Pair
		if err := json.Unmarshal(r.Identity(), &p); err != nil || p.V < 2 || p.Dst.Port != p1 {
			t.Errorf("%s.manifest after the catch-up records %s (%v), want the port", side, r.Identity(), err)
		}
		r.Close()
	}
	code, _, e := msync("catchup", base+"/src", fmt.Sprintf("rsync://127.0.0.1:%d/m/", p2), "--state", st)
	if code != 2 || !strings.Contains(e, "belongs to another pair") {
		t.Errorf("catchup into another daemon with the adopted state: exit %d, want 2: %s", code, e)
	}
}

// setIdentity writes a manifest again recording ident as its pair.
func setIdentity(t *testing.T, path string, ident []byte) {
	t.Helper()
	r, err := manifest.Open(path)
	must(t, err)
	es, err := manifest.ReadAll(r)
	must(t, err)
	r.Close()
	f, err := os.Create(path)
	must(t, err)
	w, err := manifest.NewStateWriterFor(f, ident)
	must(t, err)
	for _, e := range es {
		must(t, w.Add(e))
	}
	must(t, w.Close())
	must(t, f.Close())
}
