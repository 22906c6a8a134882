package engine

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// With Owners, every kind of object gets its source's owner and group
// (set through the descriptor that pins it, or on the symlink itself).
func TestOwnersCopied(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run as root: this test sets owners")
		}
		t.Skip("SKIP: needs root to set owners")
	}
	src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(src+"/f", []byte("f"), 0o644))
	must(os.Mkdir(src+"/d", 0o755))
	must(os.Symlink("f", src+"/l"))
	must(unix.Mkfifo(src+"/p", 0o644))
	for i, n := range []string{"f", "d", "l", "p", ""} {
		must(os.Lchown(filepath.Join(src, n), 65534-i, 65534-2*i))
	}
	for pass, kind := range []Kind{Initial, Catchup} {
		if kind == Catchup {
			// Only the owners change: a pass that sets metadata alone.
			for i, n := range []string{"f", "d", "l", "p", ""} {
				must(os.Lchown(filepath.Join(src, n), 1000+i, 2000+i))
			}
		}
		mustRun(t, Options{Kind: kind, Src: src, Dst: dst, StateDir: st, Owners: true})
		for i, n := range []string{"f", "d", "l", "p", ""} {
			uid, gid := uint32(65534-i), uint32(65534-2*i)
			if pass == 1 {
				uid, gid = uint32(1000+i), uint32(2000+i)
			}
			var s unix.Stat_t
			must(unix.Lstat(filepath.Join(dst, n), &s))
			if s.Uid != uid || s.Gid != gid {
				t.Errorf("%v: %q: owner %d:%d, want %d:%d", kind, n, s.Uid, s.Gid, uid, gid)
			}
		}
	}
}
