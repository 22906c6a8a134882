package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/internal/rsynctest"
	"golang.org/x/sys/unix"
)

// ACLs changed at DST alone: verify names each an "acl" difference and
// exits 1, a catch-up itemizes them at rsync's 'a' and puts them back,
// and a file made in a directory with a default ACL keeps no access ACL
// the source's file does not have.
func TestACLsVerifiedAndCopied(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/st"
	write(t, src+"/f", "f", 0o644)
	write(t, src+"/d/old", "old", 0o644)
	setfacl(t, "-m", "u:1234:rw", src+"/f")
	setfacl(t, "-d", "-m", "u:1234:rwx", src+"/d")

	// Judged on a copy rsync made (of mtimes in the past: rsync leaves
	// alone an mtime within the second): an ACL changed at DST is a
	// difference.
	rs := needTool(t, "rsync")
	for _, p := range []string{"f", "d/old", "d", ""} {
		must(t, os.Chtimes(filepath.Join(src, p), time0(), time0()))
	}
	if out, err := exec.Command(rs, "-aHAX", "--numeric-ids", src+"/", base+"/byrsync/").CombinedOutput(); err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	mustVerify(t, src, base+"/byrsync")
	setfacl(t, "-m", "u:77:r", base+"/byrsync/f")
	if code, out, _ := msync("verify", src, base+"/byrsync"); code != 1 || !strings.Contains(out, "* f (acl)") {
		t.Fatalf("verify of an ACL changed at DST: exit %d\n%s", code, out)
	}

	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	mustRsyncClean(t, src, dst)
	mustVerify(t, src, dst)

	setfacl(t, "-m", "u:77:r", dst+"/f")
	setfacl(t, "-k", dst+"/d")
	code, out, _ := msync("verify", src, dst)
	if code != 1 || !strings.Contains(out, "* f (acl)") || !strings.Contains(out, "* d (acl)") || !strings.Contains(out, "\nDIFFERENT") {
		t.Fatalf("verify after ACL changes at DST: exit %d\n%s", code, out)
	}
	code, out, e := msync("catchup", "-i", src, dst, "--state", st)
	if code != 0 || !strings.Contains(out, ".f.......a. f\n") || !strings.Contains(out, ".d.......a. d/\n") {
		t.Fatalf("catchup: exit %d\n%s%s", code, out, e)
	}
	mustRsyncClean(t, src, dst)
	mustVerify(t, src, dst)

	// New files in d: one inherits the default ACL at SRC too, one had
	// its inherited ACL removed at SRC.
	write(t, src+"/d/inherits", "i", 0o644)
	write(t, src+"/d/plain", "p", 0o644)
	setfacl(t, "-b", src+"/d/plain")
	if code, _, e := msync("catchup", src, dst, "--state", st); code != 0 {
		t.Fatalf("catchup: exit %d: %s", code, e)
	}
	mustRsyncClean(t, src, dst)
	mustVerify(t, src, dst)
}

// A destination whose file system has no ACLs (ramfs): copying an ACL
// fails loudly, naming the cause; verify lists the ACL as a difference and
// says in its report that DST's file system does not support ACLs, and
// with no ACL anywhere it says IDENTICAL only "in what was compared".
func TestACLsOnFileSystemWithout(t *testing.T) {
	needRoot(t, "mounting a ramfs needs root")
	base := t.TempDir()
	src, dst := base+"/src", base+"/dst"
	must(t, os.Mkdir(dst, 0o755))
	if err := unix.Mount("msync-test", dst, "ramfs", 0, ""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot mount a ramfs under CI (root): %v", err)
		}
		t.Skipf("SKIP: cannot mount a ramfs here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
	write(t, src+"/plain", "p", 0o644)
	code, out, _ := msync("verify", src, dst)
	if code != 1 || !strings.Contains(out, "ACLs at DST: not supported on DST's file system") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	if code, _, e := msync("initial", src, dst, "--state", base+"/st"); code != 0 {
		t.Fatalf("initial without ACLs: exit %d: %s", code, e)
	}
	code, out, _ = msync("verify", src, dst, "--state", base+"/st")
	if code != 0 || !strings.Contains(out, "\nIDENTICAL in what was compared") || strings.Contains(out, "\nIDENTICAL:") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	// The recorded outcome keeps the qualification.
	if code, out, e := msync("status", "--state", base+"/st"); code != 0 ||
		!strings.Contains(out, "last verify: IDENTICAL in what was compared (not compared: ACLs at DST") {
		t.Fatalf("status: exit %d\n%s%s", code, out, e)
	}

	write(t, src+"/acl", "a", 0o644)
	setfacl(t, "-m", "u:1234:r", src+"/acl")
	code, _, e := msync("catchup", src, dst, "--state", base+"/st")
	if code == 0 || !strings.Contains(e, "does not support POSIX ACLs") {
		t.Fatalf("catchup of an ACL to ramfs: exit %d\n%s", code, e)
	}
	code, out, _ = msync("verify", src, dst)
	if code != 1 || !strings.Contains(out, "ACLs at DST: not supported") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}

// Against a stock rsync end (protocol 27: no xattrs, no ACLs) verify says
// it did not compare them: an ACL that differs is never passed off as
// IDENTICAL by omission.
func TestVerifyAgainstRsyncSaysACLsNotCompared(t *testing.T) {
	needTool(t, "rsync")
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	src, dst := base+"/src", base+"/dst"
	write(t, src+"/f", "f", 0o644)
	setfacl(t, "-m", "u:1234:rw", src+"/f")
	wholeSeconds(t, src)
	port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base, ReadOnly: true})
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/src", port)
	if code, _, e := msync("initial", url, dst, "--state", base+"/st"); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	code, out, e := msync("verify", url, dst)
	if code != 0 || !strings.Contains(out, "xattrs and ACLs: rsync's protocol 27 carries none") ||
		!strings.Contains(out, "\nIDENTICAL in what was compared") {
		t.Fatalf("verify against rsync: exit %d\n%s%s", code, out, e)
	}
}

// A pass that reads more xattrs than the last one (its state written with
// --no-xattrs, or by an msync that did not copy ACLs) reads them afresh:
// the xattrs and ACLs of files unchanged since are copied, not taken from
// manifests that never held them.
func TestXattrsReadAgainWhenTheLastPassReadOthers(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/st"
	write(t, src+"/f", "f", 0o644)
	write(t, src+"/d/g", "g", 0o644)
	must(t, unix.Setxattr(src+"/f", "user.x", []byte("1"), 0))
	setfacl(t, "-m", "u:1234:rw", src+"/d/g")
	setfacl(t, "-d", "-m", "u:1234:rwx", src+"/d")
	if code, _, e := msync("initial", "--no-xattrs", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	for _, trust := range []bool{false, true} {
		args := []string{"catchup", src, dst, "--state", st}
		if trust {
			args = append(args, "--trust-dest")
		}
		if code, _, e := msync(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, e)
		}
		mustRsyncClean(t, src, dst)
		mustVerify(t, src, dst)
		// Taken away at DST behind msync's back, with the state
		// written by a pass without xattrs again.
		if !trust {
			if code, _, e := msync("catchup", "--no-xattrs", src, dst, "--state", st); code != 0 {
				t.Fatalf("catchup --no-xattrs: exit %d: %s", code, e)
			}
			must(t, unix.Removexattr(dst+"/f", "user.x"))
			setfacl(t, "-b", dst+"/d/g")
		}
	}
}
