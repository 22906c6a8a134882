package e2e

import (
	"os"
	"testing"
)

// An initial pass run again over a pair's state still knows what the last
// committed pass put at DST: a file the source deleted meanwhile goes, and
// a file msync never put there stays.
func TestInitialAgainDeletesWhatMsyncPutThere(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/a", "a", 0o644)
	write(t, src+"/b", "b", 0o644)
	write(t, src+"/d/c", "c", 0o644)
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	write(t, dst+"/admin", "not msync's", 0o644)
	must(t, os.Remove(src+"/b"))
	must(t, os.RemoveAll(src+"/d"))
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial again: exit %d: %s", code, e)
	}
	for _, p := range []string{"/b", "/d"} {
		if _, err := os.Lstat(dst + p); !os.IsNotExist(err) {
			t.Errorf("%s: msync put it there and the source deleted it, but it is still at DST (%v)", p, err)
		}
	}
	if b, err := os.ReadFile(dst + "/admin"); err != nil || string(b) != "not msync's" {
		t.Errorf("a file msync never put there was touched: %q, %v", b, err)
	}
	must(t, os.Remove(dst+"/admin"))
	mustRsyncClean(t, src, dst)
}
