package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/msync/msync/bench"
	"github.com/msync/msync/manifest"
)

// The mtree export is accepted by BSD mtree, and mtree then catches a change.
func TestMtreeAcceptsExport(t *testing.T) {
	mt := needTool(t, "mtree")
	base := t.TempDir()
	src := base + "/src"
	buildTree(t, src)
	if _, err := bench.Gen(src+"/gen", 5, 0.01); err != nil {
		t.Fatal(err)
	}
	spec := base + "/spec"
	if code, _, e := msync("manifest", src, "--format", "mtree", "-o", spec); code != 0 {
		t.Fatalf("manifest: exit %d: %s", code, e)
	}
	if out, err := exec.Command(mt, "-f", spec, "-p", src).CombinedOutput(); err != nil {
		t.Fatalf("mtree -f spec -p src: %v\n%s", err, out)
	}
	must(t, os.Chmod(src+"/page", 0o640))
	out, err := exec.Command(mt, "-f", spec, "-p", src).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "page") {
		t.Fatalf("mtree did not notice a mode change: %v\n%s", err, out)
	}
}

// The msync and JSON manifest formats of a tree agree with a scan of it.
func TestManifestFormats(t *testing.T) {
	base := t.TempDir()
	write(t, base+"/src/a", "hello", 0o644)
	write(t, base+"/src/d/b", "world", 0o600)
	if code, _, e := msync("manifest", base+"/src", "-o", base+"/m"); code != 0 {
		t.Fatal(e)
	}
	r, err := manifest.Open(base + "/m")
	must(t, err)
	es, err := manifest.ReadAll(r)
	must(t, err)
	if len(es) != 4 || es[1].Path != "a" || !es[1].HasHash || es[3].Path != "d/b" || es[3].Mode != 0o600 {
		t.Fatalf("manifest entries: %+v", es)
	}
	code, out, _ := msync("manifest", base+"/src", "--format", "json")
	if code != 0 || !strings.Contains(out, `"path":"d/b"`) || !strings.Contains(out, `"mode":"0600"`) {
		t.Fatalf("json manifest: %s", out)
	}
}

// Unreadable source files and directories are reported with their path and
// cause (exit 23) while everything else is copied. Root reads everything, so
// the pass runs as nobody.
func TestUnreadableSourceAsNobody(t *testing.T) {
	needRoot(t, "needs root to run a pass as nobody")
	base, err := os.MkdirTemp("/tmp", "msync-nobody-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	src, dst := base+"/src", base+"/dst"
	write(t, src+"/ok", "fine", 0o644)
	write(t, src+"/secret", "no", 0o000)
	write(t, src+"/locked/inside", "no", 0o644)
	write(t, src+"/open/file", "yes", 0o644)
	must(t, os.Chmod(src+"/locked", 0o000))
	must(t, os.Mkdir(dst, 0o755))
	must(t, os.Mkdir(base+"/state", 0o700))
	for _, p := range []string{dst, base + "/state"} {
		must(t, os.Chown(p, 65534, 65534))
	}
	// The test binary sits in a private build directory: copy it out.
	exe := base + "/msync.test"
	bin, err := os.ReadFile(os.Args[0])
	must(t, err)
	must(t, os.WriteFile(exe, bin, 0o755))
	cmd := exec.Command(exe, "initial", src, dst, "--state", base+"/state")
	cmd.Env = append(os.Environ(), "MSYNC_E2E_MAIN=1", "HOME=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 23 {
		t.Fatalf("want exit 23, got %v\n%s", err, out)
	}
	for _, want := range []string{filepath.Join(src, "secret") + ": permission denied", filepath.Join(src, "locked") + ": permission denied"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if string(readFile(t, dst+"/ok")) != "fine" || string(readFile(t, dst+"/open/file")) != "yes" {
		t.Fatal("readable files were not copied")
	}
}

// A corrupted, truncated or forged state file stops the pass with a clear
// error naming the file, and nothing at the destination changes.
func TestCorruptStateIsAClearError(t *testing.T) {
	for name, spoil := range map[string]func(b []byte) []byte{
		"truncated":     func(b []byte) []byte { return b[:len(b)-3] },
		"flipped byte":  func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b },
		"newer version": func(b []byte) []byte { b[8] = 9; return b },
		"forged":        func(b []byte) []byte { return []byte("MSYNCMAN\x01\x00\x03\x00garbage that is not zstd") },
		"not a manifest": func(b []byte) []byte {
			return []byte("#!/bin/sh\nrm -rf /\n")
		},
	} {
		for _, side := range []string{"src", "dst"} {
			t.Run(name+"/"+side, func(t *testing.T) {
				base := t.TempDir()
				src, dst, st := base+"/src", base+"/dst", base+"/state"
				write(t, src+"/a", "a", 0o644)
				if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
					t.Fatal(e)
				}
				m := st + "/" + side + ".manifest"
				must(t, os.WriteFile(m, spoil(readFile(t, m)), 0o600))
				write(t, src+"/b", "b", 0o644)
				code, _, e := msync("catchup", src, dst, "--state", st, "--trust-dest")
				if code != 2 || !strings.Contains(e, m) || !strings.Contains(e, "manifest") {
					t.Fatalf("exit %d, stderr: %s", code, e)
				}
				if _, err := os.Stat(dst + "/b"); !os.IsNotExist(err) {
					t.Fatal("a pass with a corrupt state wrote to the destination")
				}
			})
		}
	}
}

// Two passes on one state directory cannot run at once.
func TestStateLock(t *testing.T) {
	base := t.TempDir()
	write(t, base+"/src/a", "a", 0o644)
	setHooks(t, func(string) {
		code, _, e := msync("catchup", base+"/src", base+"/dst", "--state", base+"/state")
		if code != 2 || !strings.Contains(e, "another msync pass is running") {
			t.Errorf("concurrent pass: exit %d: %s", code, e)
		}
	}, nil)
	if code, _, e := msync("initial", base+"/src", base+"/dst", "--state", base+"/state"); code != 0 {
		t.Fatal(e)
	}
}
