package rsync

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/msync/msync/internal/rsynctest"
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

// serve runs msync's rsync daemon with module "mod"; with swap, the first
// request's directory is replaced by a symlink to outside the module once
// the daemon has resolved it, before it uses it: what a second client
// connection does while the first holds its file list.
func (f *confineFixture) serve(t *testing.T, swap bool) string {
	t.Helper()
	if swap {
		var once sync.Once
		testHookResolved = func() {
			once.Do(func() {
				if err := os.Rename(f.mod+"/sub", f.mod+"/sub.old"); err != nil {
					t.Error(err)
				}
				if err := os.Symlink(f.outside, f.mod+"/sub"); err != nil {
					t.Error(err)
				}
			})
		}
		t.Cleanup(func() { testHookResolved = nil })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Modules: []Module{{Name: "mod", Path: f.mod}}, StateDir: filepath.Join(f.base, "state")}
	done := make(chan struct{})
	go func() {
		srv.Serve(ctx, ln)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return fmt.Sprintf("rsync://127.0.0.1:%d/mod/", ln.Addr().(*net.TCPAddr).Port)
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
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "secret" {
		t.Errorf("the daemon changed a directory outside its module: it holds %q", names)
	}
	if b, err := os.ReadFile(f.outside + "/secret"); err != nil || string(b) != "never served" {
		t.Errorf("the daemon changed a file outside its module: %q, %v", b, err)
	}
}

// A stock client's push with --delete, whose directory is swapped for a
// symlink to outside the module after the daemon resolved it, writes,
// chmods and deletes in the module (or fails), never outside.
func TestServePushStaysInModule(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	f := newConfineFixture(t)
	url := f.serve(t, true)
	src := filepath.Join(f.base, "src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src+"/pushed", []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin.Path, "-a", "--delete", src+"/", url+"sub/").CombinedOutput()
	t.Logf("rsync: %v\n%s", err, out)
	f.untouched(t)
	if err == nil {
		if b, err := os.ReadFile(f.mod + "/sub.old/pushed"); err != nil || string(b) != "new" {
			t.Errorf("the push succeeded but did not land in the module: %q, %v\n%s", b, err, out)
		}
	}
}

// A stock client's pull, whose directory is swapped for a symlink to
// outside the module after the daemon resolved it, reads the module's
// directory (or fails), never what is outside.
func TestServePullStaysInModule(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	f := newConfineFixture(t)
	url := f.serve(t, true)
	dst := filepath.Join(f.base, "pulled")
	out, err := exec.Command(bin.Path, "-a", url+"sub/", dst+"/").CombinedOutput()
	t.Logf("rsync: %v\n%s", err, out)
	if b, rerr := os.ReadFile(dst + "/secret"); rerr == nil {
		t.Fatalf("the daemon served a file from outside its module: %q", b)
	}
	if err == nil {
		if b, err := os.ReadFile(dst + "/inside"); err != nil || string(b) != "in the module" {
			t.Errorf("the pull succeeded without the module's file: %q, %v\n%s", b, err, out)
		}
	}
	f.untouched(t)
}

// What the daemon tells a client names module paths, never where the
// module lives on the host.
func TestServeMessagesNameModulePaths(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	f := newConfineFixture(t)
	if err := os.WriteFile(f.mod+"/file", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(f.outside, f.mod+"/link"); err != nil {
		t.Fatal(err)
	}
	url := f.serve(t, false)
	src := filepath.Join(f.base, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{url + "missing/", f.base + "/out1/"},
		{url + "file/x", f.base + "/out2/"},
		{url + "link/", f.base + "/out3/"},
		{src + "/", url + "file/x/"},
		{src + "/", url + "link/x/"},
	} {
		out, err := exec.Command(bin.Path, append([]string{"-a"}, args...)...).CombinedOutput()
		if err == nil {
			t.Errorf("rsync %s succeeded:\n%s", strings.Join(args, " "), out)
		}
		t.Logf("rsync %s: %v\n%s", strings.Join(args, " "), err, out)
		if strings.Contains(string(out), f.base) {
			t.Errorf("rsync %s: the daemon's message shows the module's host path:\n%s", strings.Join(args, " "), out)
		}
	}
	f.untouched(t)
}

// serveRacing runs msync's rsync daemon with module "mod" and, once the
// first connection's directory is resolved, holds that connection while a
// second real client connection pushes a tree whose "sub" is a symlink to
// the directory outside the module (with --delete, so the daemon itself
// replaces the directory with the symlink); then lets the first go on.
func (f *confineFixture) serveRacing(t *testing.T, bin string) string {
	t.Helper()
	swap := filepath.Join(f.base, "swap")
	if err := os.MkdirAll(swap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", swap+"/sub"); err != nil {
		t.Fatal(err)
	}
	var url atomic.Pointer[string] // set once the daemon listens
	var first atomic.Bool
	testHookResolved = func() {
		if !first.CompareAndSwap(false, true) {
			return // the second connection goes straight on
		}
		out, err := exec.Command(bin, "-a", "--delete", swap+"/", *url.Load()).CombinedOutput()
		if err != nil {
			t.Errorf("the second connection's push: %v\n%s", err, out)
		}
		if fi, err := os.Lstat(f.mod + "/sub"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the second connection did not swap sub for a symlink: %v, %v", fi, err)
		}
	}
	t.Cleanup(func() { testHookResolved = nil })
	u := f.serve(t, false)
	url.Store(&u)
	return u
}

// Two real connections race: the first is held after its directory was
// resolved while the second swaps that directory for a symlink leading out
// of the module. The first then writes, chmods and deletes in what it
// resolved, never outside.
func TestServeRacingPushStaysInModule(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	f := newConfineFixture(t)
	url := f.serveRacing(t, bin.Path)
	src := filepath.Join(f.base, "src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src+"/pushed", []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin.Path, "-a", "--delete", src+"/", url+"sub/").CombinedOutput()
	t.Logf("first connection: %v\n%s", err, out)
	f.untouched(t)
}

// The same race for a pull: the first connection lists and reads what it
// resolved, never the file outside.
func TestServeRacingPullStaysInModule(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	f := newConfineFixture(t)
	url := f.serveRacing(t, bin.Path)
	dst := filepath.Join(f.base, "pulled")
	out, err := exec.Command(bin.Path, "-a", url+"sub/", dst+"/").CombinedOutput()
	t.Logf("first connection: %v\n%s", err, out)
	if b, rerr := os.ReadFile(dst + "/secret"); rerr == nil {
		t.Fatalf("the daemon served a file from outside its module: %q", b)
	}
	f.untouched(t)
}
