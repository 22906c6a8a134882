package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A file over 4 GiB (sparse here) keeps its holes with --sparse and its
// content exactly.
func TestBigSparseFile(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	must(t, os.MkdirAll(src, 0o755))
	f, err := os.Create(src + "/disk.img")
	must(t, err)
	const size = 4<<30 + 12345
	for _, off := range []int64{0, 2 << 30, size - 7} {
		_, err := f.WriteAt([]byte("data!!!"), off)
		must(t, err)
	}
	must(t, f.Close())
	if code, _, e := msync("initial", src, dst, "--state", st, "--sparse"); code != 0 {
		t.Fatalf("initial --sparse: exit %d: %s", code, e)
	}
	var s unix.Stat_t
	must(t, unix.Stat(dst+"/disk.img", &s))
	if s.Size != size || s.Blocks*512 > 1<<20 {
		t.Fatalf("copy of a sparse 4 GiB file: size %d, %d bytes allocated", s.Size, s.Blocks*512)
	}
	mustVerify(t, src, dst) // hashes every byte on both sides
	if d := rsyncDiff(t, src, dst); d != "" {
		t.Fatalf("rsync finds differences:\n%s", d)
	}
}

// A destination directory replaced by a symlink to elsewhere in the middle
// of a pass: nothing is written outside the destination, and the next pass
// puts the directory back.
func TestDirSwappedForSymlinkMidPass(t *testing.T) {
	base := t.TempDir()
	src, dst, st, outside := base+"/src", base+"/dst", base+"/state", base+"/outside"
	must(t, os.MkdirAll(outside, 0o755))
	for _, n := range []string{"a", "b", "c", "d"} {
		write(t, src+"/dir/"+n, "content "+n, 0o644)
	}
	swapped := false
	setHooks(t, func(p string) {
		if p == "dir/c" && !swapped {
			swapped = true
			must(t, os.Rename(dst+"/dir", dst+"/moved-away"))
			must(t, os.Symlink(outside, dst+"/dir"))
		}
	}, nil)
	code, _, _ := msync("initial", src, dst, "--state", st, "--workers", "1")
	setHooks(t, nil, nil)
	if !swapped {
		t.Fatal("the hook never ran")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written through the symlink, outside the destination: %v (exit %d)", ents, code)
	}
	if code, _, e := msync("catchup", src, dst, "--state", st); code != 0 {
		t.Fatalf("catchup after the swap: exit %d: %s", code, e)
	}
	if fi, err := os.Lstat(dst + "/dir"); err != nil || !fi.IsDir() {
		t.Fatalf("dir not restored: %v", err)
	}
	for _, n := range []string{"a", "b", "c", "d"} {
		if b, err := os.ReadFile(dst + "/dir/" + n); err != nil || string(b) != "content "+n {
			t.Fatalf("dir/%s: %q %v", n, b, err)
		}
	}
}

// Sockets are copied as rsync -D copies them: a socket node of the same
// mode and mtime (no process listens on it); rsync and verify find the
// trees identical.
func TestSocketsCopied(t *testing.T) {
	base := t.TempDir()
	src, dst := base+"/src", base+"/dst"
	write(t, src+"/a", "a", 0o644)
	ln, err := net.Listen("unix", src+"/mail.sock")
	must(t, err)
	defer ln.Close()
	must(t, os.Chmod(src+"/mail.sock", 0o750))
	if code, _, errOut := msync("initial", src, dst, "--state", base+"/st"); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if fi, err := os.Lstat(dst + "/mail.sock"); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o750 {
		t.Fatalf("socket at DST: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(dst + "/a"); string(b) != "a" {
		t.Error("the rest was not copied")
	}
	mustVerify(t, src, dst)
	if out := rsyncDiff(t, src, dst); out != "" {
		t.Fatalf("rsync sees differences:\n%s", out)
	}
}

// A relative path of over 4096 bytes (PATH_MAX) is copied and verified
// (rsync cannot follow there: it stops at 4096 bytes).
func TestPathLongerThanPathMax(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	must(t, os.MkdirAll(src, 0o755))
	// Made through os.Root: the absolute path is longer than the kernel takes.
	root, err := os.OpenRoot(src)
	must(t, err)
	long := ""
	for i := range 21 {
		long = filepath.Join(long, strings.Repeat(string(rune('a'+i)), 200))
		must(t, root.Mkdir(long, 0o755))
	}
	must(t, root.WriteFile(long+"/deep", []byte("at the bottom"), 0o644))
	root.Close()
	if len(long+"/deep") <= 4096 {
		t.Fatalf("path of %d bytes, want over 4096", len(long+"/deep"))
	}
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	mustVerify(t, src, dst)
	r, err := os.OpenRoot(dst)
	must(t, err)
	defer r.Close()
	if b, err := r.ReadFile(long + "/deep"); err != nil || string(b) != "at the bottom" {
		t.Fatalf("deep file: %q %v", b, err)
	}
}
