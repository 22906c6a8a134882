package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/sync/engine"
	"golang.org/x/sys/unix"
)

func randData(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// buildTree makes a source tree with every kind of object and metadata
// msync promises to copy.
func buildTree(t *testing.T, src string) {
	r := rand.New(rand.NewPCG(1, 2))
	write(t, src+"/empty", "", 0o644)
	write(t, src+"/one", "x", 0o600)
	write(t, src+"/page", randData(r, 4095), 0o644)
	write(t, src+"/big.bin", randData(r, 3<<20), 0o644)
	write(t, src+"/mail/list.mbox", strings.Repeat("From a@b Mon Jan 1 2007\nSubject: hi\n\nbody\n\n", 20000), 0o664)
	write(t, src+"/name with spaces", "s", 0o644)
	write(t, src+"/new\nline", "n", 0o644)
	write(t, src+"/bad-utf8-\xff\xfe", "u", 0o644)
	write(t, src+"/"+strings.Repeat("L", 255), "long", 0o644)
	write(t, src+"/setuid", "#!/bin/sh\n", 0o4755)
	write(t, src+"/deep/a/b/c/d/file", "deep", 0o640)
	must(t, os.MkdirAll(src+"/sticky", 0o755))
	must(t, os.Chmod(src+"/sticky", 0o1777))
	must(t, os.MkdirAll(src+"/setgid", 0o755))
	must(t, os.Chmod(src+"/setgid", 0o2775))
	write(t, src+"/ro/inside", "ro", 0o444)
	must(t, os.Chmod(src+"/ro", 0o555))
	must(t, os.Symlink("page", src+"/rel-link"))
	must(t, os.Symlink("/etc/passwd", src+"/abs-link"))
	must(t, os.Symlink("../nowhere/at/all", src+"/dangling"))
	must(t, os.Symlink("deep/a", src+"/dir-link"))
	write(t, src+"/links/a", "hard", 0o644)
	must(t, os.Link(src+"/links/a", src+"/links/b"))
	must(t, os.Link(src+"/links/a", src+"/deep/a/c-link"))
	write(t, src+"/links/pair1", "pair", 0o644)
	must(t, os.Link(src+"/links/pair1", src+"/links/pair2"))
	must(t, unix.Mkfifo(src+"/fifo", 0o640))
	must(t, unix.Setxattr(src+"/page", "user.msync.test", []byte("value"), 0))
	must(t, unix.Setxattr(src+"/deep", "user.dir", []byte{0, 1, 2}, 0))
	if isRoot() {
		must(t, unix.Mknod(src+"/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, os.Chown(src+"/one", 1234, 5678))
		must(t, os.Lchown(src+"/rel-link", 42, 43))
		must(t, os.Chown(src+"/deep/a", 7, 8))
		must(t, unix.Setxattr(src+"/one", "trusted.msync", []byte("root only"), 0))
	}
	// Nanosecond mtimes on files, symlinks and directories (after contents).
	ts := []unix.Timespec{{Sec: 1234567890, Nsec: 123456789}, {Sec: 1234567890, Nsec: 123456789}}
	for _, p := range []string{"page", "rel-link", "dangling", "deep/a/b", "deep", "fifo", ""} {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, p), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// buildTreeACL is buildTree plus what stock rsync's protocol 27 cannot
// carry, for msync's own routes: POSIX ACLs set with the real setfacl (an
// access ACL on a file and a fifo, access and default ACLs on a directory),
// a socket, and two files identical in everything but their inode.
func buildTreeACL(t *testing.T, src string) {
	t.Helper()
	buildTree(t, src)
	for _, args := range [][]string{
		{"-m", "u:1234:rw,g:77:r", src + "/page"},
		{"-m", "u:9:r", src + "/fifo"},
		{"-m", "g:55:rx", src + "/deep/a"},
		{"-d", "-m", "u:1234:rwx", src + "/deep/a"},
	} {
		setfacl(t, args...)
	}
	must(t, unix.Mknod(src+"/mail.sock", unix.S_IFSOCK|0o750, 0))
	write(t, src+"/twins/one", "twin", 0o640)
	write(t, src+"/twins/two", "twin", 0o640)
	ts := []unix.Timespec{{Sec: 1234567000}, {Sec: 1234567000}}
	for _, p := range []string{"twins/one", "twins/two", "mail.sock"} {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, p), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// mutateACLs changes ACLs only: one added on a file, one entry dropped, a
// default ACL removed.
func mutateACLs(t *testing.T, src string) {
	t.Helper()
	setfacl(t, "-m", "u:4321:r", src+"/empty")
	setfacl(t, "-x", "g:77", src+"/page")
	setfacl(t, "-k", src+"/deep/a")
}

func setfacl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(needTool(t, "setfacl"), args...).CombinedOutput(); err != nil {
		t.Fatalf("setfacl %v: %v\n%s", args, err, out)
	}
}

// mutateTree applies every kind of change a catch-up must carry.
func mutateTree(t *testing.T, src string) {
	r := rand.New(rand.NewPCG(3, 4))
	f, err := os.OpenFile(src+"/mail/list.mbox", os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	f.WriteString("From c@d Tue Jan 2 2007\nSubject: new\n\nnew mail\n\n")
	f.Close()
	data, _ := os.ReadFile(src + "/big.bin")
	copy(data[1<<20:], randData(r, 1000)) // in-place edit, same size
	write(t, src+"/big.bin", string(data), 0o644)
	must(t, os.Remove(src+"/one"))
	write(t, src+"/brand-new", "new", 0o644)
	must(t, os.Rename(src+"/deep/a/b", src+"/deep/a/b-renamed"))
	must(t, os.Link(src+"/page", src+"/page-hardlink"))
	must(t, os.Remove(src+"/rel-link"))
	must(t, os.Symlink("empty", src+"/rel-link"))
	must(t, os.Chmod(src+"/page", 0o600))                                // mode only
	must(t, os.Chtimes(src+"/empty", time0(), time0()))                  // mtime only
	must(t, unix.Setxattr(src+"/big.bin", "user.added", []byte("1"), 0)) // xattr only
	must(t, os.Remove(src+"/setuid"))
	must(t, os.MkdirAll(src+"/setuid/now-a-dir", 0o755)) // file -> dir
	must(t, os.RemoveAll(src+"/sticky"))
	write(t, src+"/sticky", "dir -> file", 0o644)
	must(t, os.RemoveAll(src+"/deep/a/b-renamed/c"))
	must(t, os.Remove(src+"/links/pair2")) // a hard link pair split
	write(t, src+"/links/pair2", "pair", 0o644)
	if isRoot() {
		must(t, os.Chown(src+"/page", 99, 98)) // owner only
	}
}

func time0() timeT { return unixTime(1000000000, 5) }

func TestInitialAndCatchupAreExact(t *testing.T) {
	needTool(t, "rsync")
	for _, mode := range []engine.DeltaMode{engine.DeltaAuto, engine.DeltaAlways} {
		t.Run(fmt.Sprint("delta=", mode), func(t *testing.T) {
			base := t.TempDir()
			src, dst, st := base+"/src", base+"/dst", base+"/state"
			must(t, os.Mkdir(src, 0o755))
			buildTreeACL(t, src)
			res := runPass(t, engine.Initial, src, dst, st, func(o *engine.Options) { o.Delta = mode })
			if res.Stats.Failed != 0 || !res.Committed {
				t.Fatalf("initial: %+v", res)
			}
			mustRsyncClean(t, src, dst)
			mustVerify(t, src, dst)

			// An extraneous file msync never put there survives a catch-up.
			write(t, dst+"/extraneous", "mine", 0o644)
			mutateTree(t, src)
			mutateACLs(t, src)
			res = runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) { o.Delta = mode })
			if res.Stats.Failed != 0 {
				t.Fatalf("catchup problems: %+v", res.Problems)
			}
			if _, err := os.Stat(dst + "/extraneous"); err != nil {
				t.Fatal("catchup deleted a file msync did not put there")
			}
			if mode == engine.DeltaAlways && (res.Stats.Appended != 1 || res.Stats.Deltas < 1) {
				t.Errorf("expected one append (mbox) and a delta (big.bin): %+v", res.Stats)
			}
			if mode == engine.DeltaAlways && res.Stats.Literal > 64<<10 {
				t.Errorf("catch-up sent %d literal bytes for small edits", res.Stats.Literal)
			}
			// --delete-extraneous removes it (and resets the root's mtime).
			res = runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) { o.DeleteExtraneous = true })
			if res.Stats.Deleted != 1 {
				t.Errorf("--delete-extraneous deleted %d paths, want 1", res.Stats.Deleted)
			}
			mustRsyncClean(t, src, dst)
			mustVerify(t, src, dst)

			// A no-change pass changes nothing.
			res = runPass(t, engine.Catchup, src, dst, st, nil)
			if s := res.Stats; s.Created+s.Updated+s.MetaOnly+s.Deleted+s.HardLinks != 0 {
				t.Errorf("no-change pass did something: %+v", s)
			}

			// One flipped byte with size and mtime kept: verify names the file.
			flipByteKeepTimes(t, dst+"/page")
			code, out, _ := msync("verify", src, dst)
			if code != 1 || !strings.Contains(out, "* page (content)") {
				t.Fatalf("verify of corrupted copy: exit %d\n%s", code, out)
			}
			// An xattr changed at the destination only, on a file (read by
			// the hasher through its descriptor) and on a directory (read
			// by the scanner): verify names both.
			must(t, unix.Setxattr(dst+"/big.bin", "user.added", []byte("2"), 0))
			must(t, unix.Setxattr(dst+"/deep", "user.dir", []byte{9}, 0))
			code, out, _ = msync("verify", src, dst)
			if code != 1 || !strings.Contains(out, "* big.bin (xattr)") || !strings.Contains(out, "* deep (xattr)") {
				t.Fatalf("verify with changed xattrs: exit %d\n%s", code, out)
			}
		})
	}
}

func TestDeleteExtraneous(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/keep", "k", 0o644)
	write(t, dst+"/stray/file", "s", 0o644)
	runPass(t, engine.Initial, src, dst, st, nil)
	if _, err := os.Stat(dst + "/stray/file"); err != nil {
		t.Fatal("initial deleted an extraneous file")
	}
	res := runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) { o.DeleteExtraneous = true })
	if _, err := os.Stat(dst + "/stray"); !os.IsNotExist(err) || res.Stats.Deleted != 1 {
		t.Fatalf("--delete-extraneous left %s (deleted %d)", dst+"/stray", res.Stats.Deleted)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	buildTree(t, src)
	var items []string
	runPass(t, engine.Initial, src, dst, st, func(o *engine.Options) {
		o.DryRun = true
		o.OnItem = func(it engine.Item) { items = append(items, it.String()) }
	})
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("dry run created the destination")
	}
	if _, err := os.Stat(st + "/src.manifest"); !os.IsNotExist(err) {
		t.Fatal("dry run committed a manifest")
	}
	joined := strings.Join(items, "\n")
	for _, want := range []string{">f+++++++++ big.bin", "cL+++++++++ rel-link -> page", "cd+++++++++ deep/", "hf+++++++++ links/b => deep/a/c-link", `>f+++++++++ new\#012line`, `>f+++++++++ bad-utf8-\#377\#376`} {
		if !strings.Contains(joined, want) {
			t.Errorf("dry-run itemize lacks %q:\n%s", want, joined)
		}
	}
}

func TestItemizeMatchesChanges(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/a", "aaaa", 0o644)
	write(t, src+"/b", "bbbb", 0o644)
	write(t, src+"/c", "cccc", 0o644)
	runPass(t, engine.Initial, src, dst, st, nil)
	write(t, src+"/a", "aaaaaa", 0o644)
	must(t, os.Chmod(src+"/b", 0o600))
	must(t, os.Remove(src+"/c"))
	var items []string
	runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) {
		o.OnItem = func(it engine.Item) { items = append(items, it.String()) }
	})
	want := []string{".d..t...... ./", ">f.st...... a", ".f...p..... b", "*deleting   c"}
	if strings.Join(items, "|") != strings.Join(want, "|") {
		t.Fatalf("itemize:\n got %q\nwant %q", items, want)
	}
	if !bytes.Equal(readFile(t, dst+"/a"), []byte("aaaaaa")) {
		t.Fatal("content not updated")
	}
}

func readFile(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

// --trust-dest compares with DST's committed manifest instead of scanning
// it: exact results, and a second trusted pass finds nothing to do. After an
// interrupted pass it scans anyway.
func TestTrustDest(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	buildTree(t, src)
	runPass(t, engine.Initial, src, dst, st, nil)
	mutateTree(t, src)
	trusted := func(o *engine.Options) { o.TrustDest = true }
	res := runPass(t, engine.Catchup, src, dst, st, trusted)
	if !res.TrustedDest || res.Stats.Failed != 0 {
		t.Fatalf("trusted pass: trusted=%v problems=%+v", res.TrustedDest, res.Problems)
	}
	mustRsyncClean(t, src, dst)
	mustVerify(t, src, dst)
	var items []string
	res = runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) {
		o.TrustDest = true
		o.OnItem = func(it engine.Item) { items = append(items, it.String()) }
	})
	if len(items) != 0 || !res.TrustedDest {
		t.Fatalf("second trusted pass did something: %q", items)
	}
	// A pass that never finished leaves its marker: the next one scans.
	must(t, os.WriteFile(st+"/pass-in-progress", nil, 0o600))
	res = runPass(t, engine.Catchup, src, dst, st, trusted)
	if res.TrustedDest {
		t.Fatal("trusted the destination manifest after an interrupted pass")
	}
	if _, err := os.Stat(st + "/pass-in-progress"); !os.IsNotExist(err) {
		t.Fatal("a completed pass left its in-progress marker")
	}
}

// flipByteKeepTimes corrupts one byte of p, keeping its size and times:
// only reading the content can tell.
func flipByteKeepTimes(t *testing.T, p string) {
	t.Helper()
	var fi unix.Stat_t
	must(t, unix.Stat(p, &fi))
	b, err := os.ReadFile(p)
	must(t, err)
	b[len(b)/2] ^= 1
	must(t, os.WriteFile(p, b, 0o600))
	must(t, unix.UtimesNano(p, []unix.Timespec{fi.Atim, fi.Mtim}))
}
