package transport

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/remote"
)

// confineFixture is a module with a directory "sub" that a test swaps for
// a symlink to a directory outside the module, and that outside directory
// with a file only the daemon should never read or change.
type confineFixture struct {
	base, mod, outside string
}

func newConfineFixture(t *testing.T) *confineFixture {
	t.Helper()
	base := t.TempDir()
	f := &confineFixture{base: base, mod: filepath.Join(base, "mod"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{f.mod + "/sub", f.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f.mod+"/sub/inside", []byte("in the module"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.outside+"/secret", []byte("never served"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// swap replaces mod/sub with a symlink to the outside directory: what a
// second client connection does between the daemon's check and its use.
func (f *confineFixture) swap(t *testing.T) {
	if err := os.Rename(f.mod+"/sub", f.mod+"/sub.old"); err != nil {
		t.Error(err)
	}
	if err := os.Symlink(f.outside, f.mod+"/sub"); err != nil {
		t.Error(err)
	}
}

// untouched checks that the outside directory is as the fixture made it.
func (f *confineFixture) untouched(t *testing.T) {
	t.Helper()
	fi, err := os.Stat(f.outside)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("the daemon changed the mode of a directory outside its module: %v", fi.Mode())
	}
	ents, _ := os.ReadDir(f.outside)
	if len(ents) != 1 || ents[0].Name() != "secret" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the daemon changed a directory outside its module: it holds %q", names)
	}
	if b, err := os.ReadFile(f.outside + "/secret"); err != nil || string(b) != "never served" {
		t.Errorf("the daemon changed a file outside its module: %q, %v", b, err)
	}
}

// startDaemon serves the fixture's module "m" and swaps mod/sub once a
// request is resolved, before it is used.
func (f *confineFixture) startDaemon(t *testing.T) func() *remote.Conn {
	t.Helper()
	t.Setenv("XDG_STATE_HOME", filepath.Join(f.base, "state"))
	var once sync.Once
	testHookResolved = func() { once.Do(func() { f.swap(t) }) }
	t.Cleanup(func() { testHookResolved = nil })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		ServeListener(ctx, ln, &DaemonConfig{Modules: []Module{{Name: "m", Path: f.mod}}})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() *remote.Conn {
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
}

// A pull from the msync daemon whose directory is swapped for a symlink
// to outside the module after the daemon resolved it reads the module's
// directory (or fails), never what is outside.
func TestDaemonPullStaysInModule(t *testing.T) {
	f := newConfineFixture(t)
	dial := f.startDaemon(t)
	ctx := context.Background()
	c := dial()
	defer c.Close()
	s, err := c.OpenSource(ctx, "m/sub", "")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(f.base, "out")
	_, err = engine.Run(ctx, engine.Options{Kind: engine.Initial, Src: "daemon:m/sub", Dst: out, Source: s, StateDir: filepath.Join(f.base, "pull-state")})
	if b, rerr := os.ReadFile(out + "/secret"); rerr == nil {
		t.Fatalf("the daemon served a file from outside its module: %q", b)
	}
	if err == nil {
		if b, err := os.ReadFile(out + "/inside"); err != nil || string(b) != "in the module" {
			t.Errorf("the pull succeeded without the module's file: %q, %v", b, err)
		}
	}
	f.untouched(t)
}

// A push to the msync daemon whose directory is swapped for a symlink to
// outside the module after the daemon resolved it writes into the module
// (or fails), never outside.
func TestDaemonPushStaysInModule(t *testing.T) {
	f := newConfineFixture(t)
	dial := f.startDaemon(t)
	ctx := context.Background()
	src := filepath.Join(f.base, "src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src+"/pushed", []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := dial()
	defer c.Close()
	local := tree.NewLocal(src)
	defer local.Close()
	res, err := c.Push(ctx, local, "m/sub", "", remote.PushOptions{Kind: engine.Initial, SrcName: "t:src", DeleteExtraneous: true}, remote.PushHandlers{})
	f.untouched(t)
	if err == nil && res.Stats.Failed == 0 {
		if b, err := os.ReadFile(f.mod + "/sub.old/pushed"); err != nil || string(b) != "new" {
			t.Errorf("the push succeeded but did not land in the module: %q, %v", b, err)
		}
	}
}

// What the msync daemon tells a client names module paths, never where
// the module lives on the host.
func TestDaemonMessagesNameModulePaths(t *testing.T) {
	f := newConfineFixture(t)
	if err := os.WriteFile(f.mod+"/file", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dial := f.startDaemon(t)
	testHookResolved = nil
	ctx := context.Background()
	for _, p := range []string{"m/missing", "m/file", "m/file/x", "m/sub/../../x"} {
		c := dial()
		var msgs []string
		s, err := c.OpenSource(ctx, p, "")
		if err != nil {
			msgs = append(msgs, err.Error())
		} else {
			sc, err := s.Scan(ctx, tree.ScanConfig{})
			if err != nil {
				msgs = append(msgs, err.Error())
			} else {
				for {
					if _, err := sc.Next(); err != nil {
						msgs = append(msgs, err.Error())
						break
					}
				}
				for _, pr := range sc.Problems() {
					msgs = append(msgs, pr.Err.Error())
				}
				sc.Close()
			}
		}
		c.Close()
		c = dial()
		res, err := c.Push(ctx, tree.NewLocal(f.mod+"/sub"), p, "", remote.PushOptions{Kind: engine.Initial, SrcName: "t"}, remote.PushHandlers{})
		if err != nil {
			msgs = append(msgs, err.Error())
		} else {
			for _, pr := range res.Problems {
				msgs = append(msgs, pr.Err)
			}
		}
		c.Close()
		if len(msgs) == 0 {
			t.Errorf("%s: no error", p)
		}
		for _, m := range msgs {
			t.Logf("%s: %s", p, m)
			if strings.Contains(m, f.base) {
				t.Errorf("%s: the daemon's message shows the module's host path: %s", p, m)
			}
		}
	}
}

// A hashing scan (what verify asks for) from the msync daemon whose
// directory is swapped after the daemon resolved it hashes the module's
// files, never what is outside.
func TestDaemonVerifyStaysInModule(t *testing.T) {
	f := newConfineFixture(t)
	dial := f.startDaemon(t)
	ctx := context.Background()
	c := dial()
	defer c.Close()
	s, err := c.OpenSource(ctx, "m/sub", "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.Scan(ctx, tree.ScanConfig{Hash: true, Xattrs: []string{"user."}})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var paths []string
	for {
		e, err := sc.Next()
		if err != nil {
			break
		}
		paths = append(paths, e.Path)
		if e.Path == "inside" && !e.HasHash {
			t.Errorf("inside: no hash (%v)", sc.HashErr(e.Path))
		}
	}
	if strings.Join(paths, ",") != ",inside" {
		t.Errorf("the hashing scan listed %q, want the module's directory", paths)
	}
}

// A push to the msync daemon keeps its state in the daemon's own state
// directory: a client naming one on the daemon's host is refused before
// anything is created there.
func TestDaemonPushStateStaysHome(t *testing.T) {
	f := newConfineFixture(t)
	dial := f.startDaemon(t)
	testHookResolved = nil
	ctx := context.Background()
	c := dial()
	local := tree.NewLocal(f.mod + "/sub")
	_, err := c.Push(ctx, local, "m/copy", "", remote.PushOptions{Kind: engine.Initial, SrcName: "t:sub",
		StateDir: filepath.Join(f.outside, "state")}, remote.PushHandlers{})
	local.Close()
	c.Close()
	if err == nil || !strings.Contains(err.Error(), "cannot choose") {
		t.Fatalf("a push naming a state directory on the daemon's host: %v, want a refusal", err)
	}
	f.untouched(t)
	for round := range 2 {
		c := dial()
		local := tree.NewLocal(f.mod + "/sub")
		res, err := c.Push(ctx, local, "m/copy", "", remote.PushOptions{Kind: []engine.Kind{engine.Initial, engine.Catchup}[round], SrcName: "t:sub"}, remote.PushHandlers{})
		local.Close()
		c.Close()
		if err != nil || res.Stats.Failed != 0 {
			t.Fatalf("push %d: %v %+v", round, err, res)
		}
	}
	if b, err := os.ReadFile(f.mod + "/copy/inside"); err != nil || string(b) != "in the module" {
		t.Errorf("the push did not land: %q, %v", b, err)
	}
	f.untouched(t)
	if ds, _ := filepath.Glob(filepath.Join(f.base, "state", "msync", "serve", "m.copy-*", "dst.manifest")); len(ds) != 1 {
		t.Errorf("the push's state: %q, want one directory in the daemon's state", ds)
	}
}
