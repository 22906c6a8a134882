// Package e2e tests msync end to end on real trees, judged by real rsync,
// BSD mtree and msync verify.
package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/record"

	"github.com/msync/msync/internal/cli"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/verify"
)

// needTool returns the path of a real tool. Under CI a missing tool fails
// the test (make test installs them); elsewhere the test is skipped, loudly.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; make test installs it (scripts/deps.sh)", name)
		}
		t.Skipf("SKIP: %s not installed (run make deps)", name)
	}
	return p
}

func isRoot() bool { return os.Geteuid() == 0 }

// needRoot skips a test that needs root (why says what for), except under
// CI, which runs as root: there it fails, never skips.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if isRoot() {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run as root: %s", why)
	}
	t.Skipf("SKIP: %s", why)
}

// rsyncDiff returns what `rsync -aHAX --delete -c -n -i` would change:
// empty when dst is an exact copy of src, ACLs included.
func rsyncDiff(t *testing.T, src, dst string) string {
	t.Helper()
	rs := needTool(t, "rsync")
	args := []string{"-aHAX", "--delete", "-c", "-n", "-i", src + "/", dst + "/"}
	if isRoot() {
		args = append([]string{"--numeric-ids"}, args...)
	}
	out, err := exec.Command(rs, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rsync %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func mustRsyncClean(t *testing.T, src, dst string) {
	t.Helper()
	if d := rsyncDiff(t, src, dst); d != "" {
		t.Fatalf("rsync -aHAX --delete -c -n -i finds differences:\n%s", d)
	}
}

func mustVerify(t *testing.T, src, dst string) {
	t.Helper()
	rep, err := verify.Run(context.Background(), verify.Options{Src: src, Dst: dst, Xattrs: true, Owners: isRoot()})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical {
		var b strings.Builder
		verify.WriteText(&b, rep)
		t.Fatalf("msync verify finds differences:\n%s", b.String())
	}
}

func runPass(t *testing.T, kind engine.Kind, src, dst, state string, mod func(*engine.Options)) *record.Result {
	t.Helper()
	o := engine.Options{Kind: kind, Src: src, Dst: dst, StateDir: state, Xattrs: true, Owners: isRoot()}
	if mod != nil {
		mod(&o)
	}
	res, err := engine.Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%s pass: %v", kind, err)
	}
	return res
}

// msync runs the CLI in-process and returns its exit code and output.
func msync(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func write(t *testing.T, p string, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
