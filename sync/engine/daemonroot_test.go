package engine

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"

	"golang.org/x/sys/unix"
)

// snapshot lists every object beneath dir with its type, mode, size,
// mtime and ctime: anything written, chmod'ed, created or removed there
// changes it.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		m[p] = fmt.Sprintf("%o %d %d %d", st.Mode, st.Size, st.Mtim.Nano(), st.Ctim.Nano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A daemon's pass has its destination open (DstRoot) and names it by a
// module path ("m/x"), which is no path on the daemon's host: nothing of
// the pass may use that name as a path. Run from a working directory that
// holds a decoy m/x, the pass leaves the decoy alone, and it sees what the
// real destination holds: here the default ACL its module gave it (seen
// by nothing else when the catch-up trusts DST's manifest), which new
// files must not keep (the source's file has none).
func TestDaemonDestNameIsNoHostPath(t *testing.T) {
	if _, err := exec.LookPath("setfacl"); err != nil {
		t.Fatalf("setfacl (package acl) is needed: %v", err)
	}
	base := t.TempDir()
	src, st, work, real := base+"/src", base+"/state", base+"/work", base+"/mod/x"
	for _, d := range []string{src, work + "/m/x/sub", real} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{src + "/f", work + "/m/x/f", work + "/m/x/sub/g"} {
		if err := os.WriteFile(f, []byte("content of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, work)
	t.Chdir(work)
	for i, kind := range []Kind{Initial, Catchup} {
		if kind == Catchup {
			if err := os.WriteFile(src+"/f2", []byte("more"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// The module's default ACL, given to DST (again: the pass before
		// made DST's root as the source's, which has none).
		if out, err := exec.Command("setfacl", "-d", "-m", "u:nobody:rwx", real).CombinedOutput(); err != nil {
			t.Fatalf("setfacl: %v\n%s", err, out)
		}
		root, err := fsx.OpenRootAs(real, "m/x")
		if err != nil {
			t.Fatal(err)
		}
		mustRun(t, Options{Kind: kind, Src: src, Dst: "m/x", DstRoot: root, DstCreated: i == 0, StateDir: st, Xattrs: true, TrustDest: kind == Catchup})
		root.Close()
		for _, f := range []string{"f", "f2"}[:i+1] {
			if _, err := unix.Lgetxattr(real+"/"+f, manifest.ACLAccess, nil); err != unix.ENODATA {
				t.Errorf("%v: %s/%s has an access ACL the source's file has not (getxattr: %v)", kind, real, f, err)
			}
		}
		if _, err := os.Stat(real + "/f"); err != nil {
			t.Fatal(err)
		}
	}
	after := snapshot(t, work)
	for p, b := range before {
		if after[p] != b {
			t.Errorf("decoy %s changed: %s, was %s", p, after[p], b)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s made in the decoy", p)
		}
	}
}
