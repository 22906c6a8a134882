package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/msync/msync/internal/rsynctest"
)

// A catch-up push into stock rsync whose source has a directory it cannot
// read deletes nothing below it at the destination (the files may still
// be there), reports it (exit 23), and still deletes what is gone beside
// it. Root reads everything, so the catch-up runs as nobody.
func TestPushKeepsWhatAnUnreadableDirHides(t *testing.T) {
	needRoot(t, "needs root to run a push as nobody")
	bin := rsynctest.Binaries(t)[0]
	base, err := os.MkdirTemp("/tmp", "msync-push-nobody-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/gone", "deleted at the source", 0o644)
	write(t, src+"/locked/inside", "still at the source", 0o644)
	write(t, src+"/locked/deep/er", "still at the source", 0o644)
	must(t, os.Mkdir(dst, 0o755))
	port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base})
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/dst", port)
	if code, _, e := msync("initial", src, url, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d\n%s", code, e)
	}
	must(t, os.Remove(src+"/gone"))
	must(t, os.Chmod(src+"/locked", 0o000))
	must(t, filepath.Walk(st, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, 65534, 65534)
	}))
	// The test binary sits in a private build directory: copy it out.
	exe := base + "/msync.test"
	b, err := os.ReadFile(os.Args[0])
	must(t, err)
	must(t, os.WriteFile(exe, b, 0o755))
	cmd := exec.Command(exe, "catchup", src, url, "--state", st)
	cmd.Env = append(os.Environ(), "MSYNC_E2E_MAIN=1", "HOME=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 23 || !strings.Contains(string(out), "permission denied") {
		t.Fatalf("catch-up as nobody: %v, want exit 23 naming the unreadable directory\n%s", err, out)
	}
	for _, p := range []string{"locked/inside", "locked/deep/er"} {
		if _, err := os.Lstat(filepath.Join(dst, p)); err != nil {
			t.Errorf("%s: %v: deleted at the destination though the source could not tell it was gone\n%s", p, err, out)
		}
	}
	if _, err := os.Lstat(dst + "/gone"); err == nil {
		t.Errorf("gone: deleted at the source, still at the destination\n%s", out)
	}
}
