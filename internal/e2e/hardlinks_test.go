package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/sync/engine"
	"golang.org/x/sys/unix"
)

// linkedSpecials makes src with hard-linked symlinks, fifos and files, and
// a fifo r and a symlink u that are not linked (yet).
func linkedSpecials(t *testing.T, src string) {
	t.Helper()
	must(t, os.MkdirAll(src+"/d", 0o755))
	must(t, os.Symlink("target", src+"/s"))
	must(t, os.Link(src+"/s", src+"/d/t"))
	must(t, os.Symlink("target", src+"/u"))
	must(t, syscall.Mkfifo(src+"/p", 0o640))
	must(t, os.Link(src+"/p", src+"/q"))
	must(t, syscall.Mkfifo(src+"/r", 0o640))
	write(t, src+"/f", "linked file", 0o644)
	must(t, os.Link(src+"/f", src+"/d/g"))
}

// setLtimes gives path (a symlink or a node, never followed) mtime m.
func setLtimes(t *testing.T, path string, m time.Time) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(m.UnixNano()), unix.NsecToTimespec(m.UnixNano())}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW))
}

// Hard links between symlinks and fifos are copied by every transport,
// pulling and pushing, as rsync -H copies them; a catch-up follows the
// source joining and splitting such links; verify through the transport
// names a link the copy lost, whatever the object.
func TestHardLinkedSpecialsEveryTransport(t *testing.T) {
	needTool(t, "rsync")
	for _, tc := range transports() {
		for _, dir := range []string{"pull", "push"} {
			t.Run(tc.name+"/"+dir, func(t *testing.T) {
				base := t.TempDir()
				src, dst, st := base+"/src", base+"/dst", base+"/state"
				linkedSpecials(t, src)
				from, to := tc.remote(t, src), dst
				if dir == "push" {
					from, to = src, tc.remote(t, dst)
				}
				flags := append([]string{"--state", st}, tc.flags(t)...)
				runJSON(t, append([]string{"initial", from, to}, flags...)...)
				mustRsyncClean(t, src, dst)
				mustVerify(t, src, dst)
				if code, out, e := msync(append([]string{"verify", from, to}, tc.flags(t)...)...); code != 0 {
					t.Fatalf("verify through %s: exit %d\n%s%s", tc.name, code, out, e)
				}

				// The source joins r to p and u to s, and splits d/t
				// from s (a new symlink, same target and mtime).
				must(t, os.Remove(src+"/r"))
				must(t, os.Link(src+"/p", src+"/r"))
				must(t, os.Remove(src+"/u"))
				must(t, os.Link(src+"/s", src+"/u"))
				fi, err := os.Lstat(src + "/d/t")
				must(t, err)
				must(t, os.Remove(src+"/d/t"))
				must(t, os.Symlink("target", src+"/d/t"))
				setLtimes(t, src+"/d/t", fi.ModTime())
				runJSON(t, append([]string{"catchup", from, to}, flags...)...)
				mustRsyncClean(t, src, dst)
				mustVerify(t, src, dst)

				// The copy loses a link: dst/q becomes a fifo of its own,
				// with p's mode and mtime.
				fi, err = os.Lstat(dst + "/q")
				must(t, err)
				must(t, os.Remove(dst+"/q"))
				must(t, syscall.Mkfifo(dst+"/q", 0o640))
				must(t, os.Chmod(dst+"/q", fi.Mode().Perm()))
				setLtimes(t, dst+"/q", fi.ModTime())
				if d := rsyncDiff(t, src, dst); !strings.Contains(d, "hS") {
					t.Fatalf("rsync does not see the lost link (the test is wrong):\n%s", d)
				}
				code, out, _ := msync(append([]string{"verify", from, to}, tc.flags(t)...)...)
				if code != 1 || !strings.Contains(out, "(links)") {
					t.Fatalf("verify through %s of a copy that lost a fifo's link: exit %d\n%s", tc.name, code, out)
				}
				runJSON(t, append([]string{"catchup", from, to}, flags...)...)
				mustRsyncClean(t, src, dst)
			})
		}
	}
}

// Stock rsync's protocol 27, which msync speaks with it, lists the device
// and inode of regular files only: against a stock rsync daemon, verify
// says that links between other objects were not compared, instead of
// calling a copy that lost them identical without a word (or a copy
// that has them different).
func TestVerifyAgainstRsyncSaysSpecialLinksNotCompared(t *testing.T) {
	needTool(t, "rsync")
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	src, dst := base+"/src", base+"/dst"
	linkedSpecials(t, src)
	port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base, ReadOnly: true})
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/src", port)
	if code, _, e := msync("initial", url, dst, "--state", base+"/st"); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	code, out, e := msync("verify", url, dst)
	if code != 0 || !strings.Contains(out, "hard links of symlinks, fifos, sockets and devices: rsync's protocol 27") ||
		!strings.Contains(out, "\nIDENTICAL in what was compared") {
		t.Fatalf("verify against rsync: exit %d\n%s%s", code, out, e)
	}
	// The regular files' links crossed, and are compared.
	must(t, os.Remove(dst+"/d/g"))
	write(t, dst+"/d/g", "linked file", 0o644)
	fi, err := os.Stat(src + "/f")
	must(t, err)
	must(t, os.Chtimes(dst+"/d/g", fi.ModTime(), fi.ModTime()))
	if code, out, _ := msync("verify", url, dst); code != 1 || !strings.Contains(out, "(links)") {
		t.Fatalf("verify against rsync of a copy that lost a file's link: exit %d\n%s", code, out)
	}
}

// A pass killed right after it made a hard link of a symlink or fifo
// leaves a name the next pass attributes to msync (journaled with its own
// kind) and deletes once the source no longer has it.
func TestKillRightAfterSpecialLink(t *testing.T) {
	needTool(t, "rsync")
	for _, step := range []string{"link:1", "link:2"} {
		t.Run(strings.ReplaceAll(step, ":", ""), func(t *testing.T) {
			base := t.TempDir()
			src, dst, st := base+"/src", base+"/dst", base+"/state"
			must(t, os.Mkdir(src, 0o755))
			must(t, syscall.Mkfifo(src+"/p", 0o640))
			must(t, os.Link(src+"/p", src+"/q"))
			must(t, os.Symlink("target", src+"/s"))
			must(t, os.Link(src+"/s", src+"/t"))
			if !runKilledAt(t, step, "initial", src, dst, "--state", st, "--fsync=none") {
				t.Fatalf("the initial pass finished: it never reached %s", step)
			}
			emptyDir(t, src)
			if code, _, e := msync("catchup", src, dst, "--state", st); code != 0 {
				t.Fatalf("catch-up after the kill: exit %d: %s", code, e)
			}
			if d := rsyncDiff(t, src, dst); d != "" {
				t.Fatalf("killed at %s, source emptied: names msync put at DST are left:\n%s", step, d)
			}
		})
	}
}

// A push into stock rsync cannot send the links between symlinks or
// fifos (protocol 27): the pass says so instead of dropping them without
// a word, and verify against the daemon says it did not compare them.
func TestPushIntoStockRsyncSaysSpecialLinksLost(t *testing.T) {
	needTool(t, "rsync")
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	src := base + "/src"
	linkedSpecials(t, src)
	wholeSeconds(t, src) // protocol 27 carries seconds
	must(t, os.Mkdir(base+"/mod", 0o755))
	port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "m", Path: base + "/mod"})
	url := fmt.Sprintf("rsync://127.0.0.1:%d/m/", port)
	code, _, e := msync("initial", src, url, "--state", base+"/state")
	if code != 0 || !strings.Contains(e, "4 hard-linked symlinks, fifos, sockets or devices arrive as separate objects") {
		t.Fatalf("push into stock rsync: exit %d:\n%s", code, e)
	}
	code, out, e := msync("verify", src, url)
	if code != 0 || !strings.Contains(out, "hard links of symlinks, fifos, sockets and devices: rsync's protocol 27") {
		t.Fatalf("verify against the daemon: exit %d\n%s%s", code, out, e)
	}
}

// With --trust-dest the destination's committed manifest stands in for
// its scan: it must say which names msync linked (the first of a group
// too), so that a catch-up after the source split a name off makes it
// again.
func TestTrustDestFollowsSplitLinks(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	linkedSpecials(t, src)
	must(t, os.Link(src+"/s", src+"/w")) // d/t, s and w: d/t leads
	trusted := func(o *engine.Options) { o.TrustDest = true }
	runPass(t, engine.Initial, src, dst, st, nil)
	mustRsyncClean(t, src, dst)
	for _, p := range []string{"d/t", "q"} {
		fi, err := os.Lstat(src + "/" + p)
		must(t, err)
		must(t, os.Remove(src+"/"+p))
		if p == "q" {
			must(t, syscall.Mkfifo(src+"/q", 0o640))
		} else {
			must(t, os.Symlink("target", src+"/"+p))
		}
		setLtimes(t, src+"/"+p, fi.ModTime())
	}
	for _, p := range []string{"d", ""} {
		must(t, os.Chtimes(src+"/"+p, time.Unix(1e9, 0), time.Unix(1e9, 0)))
	}
	runPass(t, engine.Catchup, src, dst, st, trusted)
	mustRsyncClean(t, src, dst)
	mustVerify(t, src, dst)
}

// Names the destination links together in another grouping than the
// source's, each up to date on its own (rsync -H leaves them so): a
// catch-up regroups them, regular files and symlinks alike, and never
// keeps one destination object for two source groups.
func TestCatchupRegroupsLinks(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	must(t, os.Mkdir(src, 0o755))
	m := time.Unix(1e9, 0)
	for _, p := range []string{"fs", "fu"} {
		write(t, src+"/"+p, "same", 0o644)
		must(t, os.Chtimes(src+"/"+p, m, m))
	}
	must(t, os.Link(src+"/fs", src+"/ft"))
	for _, p := range []string{"ls", "lu"} {
		must(t, os.Symlink("target", src+"/"+p))
		setLtimes(t, src+"/"+p, m)
	}
	must(t, os.Link(src+"/ls", src+"/lt"))
	runPass(t, engine.Initial, src, dst, st, nil)
	mustRsyncClean(t, src, dst)
	// At DST, s becomes a name of u: s and u are one object there, t
	// another.
	for _, k := range []string{"f", "l"} {
		must(t, os.Remove(dst+"/"+k+"s"))
		must(t, os.Link(dst+"/"+k+"u", dst+"/"+k+"s"))
	}
	runPass(t, engine.Catchup, src, dst, st, nil)
	mustRsyncClean(t, src, dst)
	mustVerify(t, src, dst)
}
