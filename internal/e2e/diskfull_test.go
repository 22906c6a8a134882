package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A destination on a small file system: the pass stops at the first full
// write with an error naming the file and ENOSPC, commits nothing, leaves
// only complete files under real names; once there is room the next pass
// completes.
func TestDiskFull(t *testing.T) {
	needTool(t, "rsync")
	needRoot(t, "mounting a tmpfs needs root")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	must(t, os.MkdirAll(dst, 0o755))
	if err := unix.Mount("tmpfs", dst, "tmpfs", 0, "size=6m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
	allowed := contents{}
	for i := range 12 {
		data := strings.Repeat(string(rune('a'+i)), 1<<20)
		write(t, filepath.Join(src, "d", "f"+string(rune('a'+i))), data, 0o644)
	}
	recordContents(t, src, allowed)
	code, _, errOut := msync("initial", src, dst, "--state", st)
	if code != 2 || !strings.Contains(errOut, "no space left on device") || !strings.Contains(errOut, dst+"/d/f") {
		t.Fatalf("initial on a full disk: exit %d, want 2 naming a file and ENOSPC:\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(st, "src.manifest")); err == nil {
		t.Fatal("a pass that ran out of space committed its manifest")
	}
	checkNothingInvented(t, dst, st, allowed)
	// Room again: the next pass completes, with nothing left over.
	if err := unix.Mount("tmpfs", dst, "tmpfs", unix.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("remount: %v", err)
	}
	if code, _, e := msync("catchup", src, dst, "--state", st); code != 0 {
		t.Fatalf("catchup after freeing space: exit %d: %s", code, e)
	}
	if n := checkNothingInvented(t, dst, st, allowed); n != 0 {
		t.Errorf("%d temp files left", n)
	}
	mustRsyncClean(t, src, dst)
}
