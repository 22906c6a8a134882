package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/send"
)

func setHooks(t *testing.T, before, after func(string)) {
	send.TestHooks.BeforeOpen, send.TestHooks.AfterRead = before, after
	t.Cleanup(func() { send.TestHooks.BeforeOpen, send.TestHooks.AfterRead = nil, nil })
}

func appendTo(t *testing.T, p, s string) {
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	f.WriteString(s)
	f.Close()
}

// A file that keeps growing while it is read is retried, then reported
// (exit 23); it is never committed torn, and the next quiet pass copies it.
func TestGrowingFileIsNeverCommittedTorn(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/log", strings.Repeat("line\n", 1000), 0o644)
	write(t, src+"/other", "fine", 0o644)
	reads := 0
	setHooks(t, nil, func(p string) {
		if p == "log" {
			reads++
			appendTo(t, src+"/log", "more\n")
		}
	})
	code, _, errOut := msync("initial", src, dst, "--state", st)
	if code != 23 || !strings.Contains(errOut, "log") || !strings.Contains(errOut, "changed while it was read") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	// The first read finds the file not as scanned (it looks only after
	// reading); then the careful try, which looks before too, and 2 retries.
	if reads != 4 {
		t.Errorf("file read %d times, want 4 (first read, careful try and 2 retries)", reads)
	}
	if _, err := os.Stat(dst + "/log"); !os.IsNotExist(err) {
		t.Fatal("a file that changed while read was committed")
	}
	if string(readFile(t, dst+"/other")) != "fine" {
		t.Fatal("the other file was not copied")
	}
	checkNothingInvented(t, dst, st, contents{"other": {hashOf(t, src+"/other"): true}})
	setHooks(t, nil, nil)
	if code, _, errOut := msync("catchup", src, dst, "--state", st); code != 0 {
		t.Fatalf("quiet catchup: exit %d: %s", code, errOut)
	}
	mustVerify(t, src, dst)
}

// A file deleted between the scan and its transfer counts as vanished: exit 24.
func TestVanishedFileExit24(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/a", "a", 0o644)
	write(t, src+"/qfiles/in/1.pck", "queued", 0o644)
	setHooks(t, func(p string) {
		if p == "qfiles/in/1.pck" {
			os.Remove(src + "/" + p)
		}
	}, nil)
	code, _, errOut := msync("initial", src, dst, "--state", st)
	if code != 24 || !strings.Contains(errOut, "vanished") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// --final proves the source was quiet, or names what moved and exits 24.
func TestFinalPassProvesQuiet(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/spool/input/1-D", "body", 0o640)
	write(t, src+"/spool/input/1-H", "header", 0o640)
	write(t, src+"/lists/x.mbox", "From a\n\nhi\n", 0o644)
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatal(e)
	}
	if code, _, e := msync("catchup", "--final", src, dst, "--state", st); code != 0 || !strings.Contains(e, "quiet") {
		t.Fatalf("quiet source: exit %d: %s", code, e)
	}
	// Mail arrives while the final pass runs.
	appendTo(t, src+"/lists/x.mbox", "From b\n\nagain\n")
	setHooks(t, func(p string) {
		if p == "lists/x.mbox" {
			write(t, src+"/spool/input/2-D", "late mail", 0o640)
		}
	}, nil)
	code, _, e := msync("catchup", "--final", src, dst, "--state", st)
	if code != 24 || !strings.Contains(e, "NOT quiet") || !strings.Contains(e, "spool/input/2-D (appeared)") {
		t.Fatalf("changing source: exit %d, stderr:\n%s", code, e)
	}
}

// If the old destination copy changes between its signature and the apply,
// the rebuilt file fails its whole-file hash and is copied whole instead.
func TestDeltaMismatchFallsBackToFullCopy(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	r := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	write(t, src+"/big", r, 0o644)
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatal(e)
	}
	write(t, src+"/big", "changed at the front"+r[20:], 0o644)
	setHooks(t, nil, nil)
	engine.TestHooks.AfterSign = func(p string) {
		// Someone scribbles on the destination's old copy mid-transfer.
		f, err := os.OpenFile(dst+"/"+p, os.O_WRONLY, 0)
		must(t, err)
		f.WriteAt([]byte("SCRIBBLE"), 500000)
		f.Close()
	}
	t.Cleanup(func() { engine.TestHooks.AfterSign = nil })
	code, out, e := msync("catchup", src, dst, "--state", st, "--delta=always", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if !strings.Contains(out, `"deltas": 0`) {
		t.Errorf("the failed delta should not count as one:\n%s", out)
	}
	mustVerify(t, src, dst)
}

// Files an interrupted initial pass put at DST, and that then vanish from
// SRC, are deleted by the next catch-up: the interrupted pass's pending
// manifest says msync put them there.
func TestInterruptedPassOrphansAreDeleted(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	for i := range 10 {
		write(t, fmt.Sprintf("%s/f%02d", src, i), "data", 0o644)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	setHooks(t, func(string) {
		if n++; n == 4 {
			cancel() // the pass dies after three files, as if killed
		}
	}, nil)
	_, err := engine.Run(ctx, engine.Options{Kind: engine.Initial, Src: src, Dst: dst, StateDir: st, Workers: 1})
	if err == nil {
		t.Fatal("cancelled pass reported success")
	}
	setHooks(t, nil, nil)
	if _, err := os.Stat(st + "/src.manifest"); !os.IsNotExist(err) {
		t.Fatal("an interrupted pass committed its manifest")
	}
	if _, err := os.Stat(dst + "/f00"); err != nil {
		t.Fatalf("the interrupted pass copied nothing: %v", err)
	}
	must(t, os.Remove(src+"/f00")) // gone from the source before the next pass
	write(t, dst+"/mine", "not msync's", 0o644)
	res := runPass(t, engine.Catchup, src, dst, st, nil)
	if _, err := os.Stat(dst + "/f00"); !os.IsNotExist(err) {
		t.Fatalf("a file the interrupted pass copied, now gone from the source, is still at DST (deleted %d)", res.Stats.Deleted)
	}
	if _, err := os.Stat(dst + "/mine"); err != nil {
		t.Fatal("a file msync never put there was deleted")
	}
	if m, _ := filepath.Glob(st + "/src.manifest.*"); len(m) != 0 {
		t.Errorf("interrupted manifests not settled: %q", m)
	}
	must(t, os.Remove(dst+"/mine"))
	runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) { o.DeleteExtraneous = false })
	mustVerify(t, src, dst)
}

// A path that moves on every read is retried and seen again by --final's
// re-scan, but listed once, with the first reason.
func TestFinalListsEachMovedPathOnce(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/log", "line\n", 0o644)
	runPass(t, engine.Initial, src, dst, st, nil)
	appendTo(t, src+"/log", "more\n")
	setHooks(t, nil, func(p string) { appendTo(t, src+"/"+p, "again\n") })
	res := runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) { o.Final = true })
	// The first read cannot tell when the file changed (it looks only
	// after reading); the careful try sees it changed since the scan.
	if len(res.NotQuiet) != 1 || res.NotQuiet[0] != "log (changed during the pass)" {
		t.Fatalf("NotQuiet = %q, want one entry for log", res.NotQuiet)
	}
}

// A file replaced by a rename with new content of the same size and the
// same mtime (two saves within one timestamp tick, or a tool that keeps
// mtimes) passes rsync's quick check; the source's inode, recorded by the
// last pass, says it is another file, and the catch-up copies it.
func TestReplacedFileWithSameSizeAndMtime(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	write(t, src+"/config.pck", "version A of the list config\n", 0o644)
	write(t, src+"/other", "unchanged", 0o644)
	if code, _, e := msync("initial", src, dst, "--state", st); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	fi, err := os.Stat(src + "/config.pck")
	must(t, err)
	write(t, src+"/config.pck.tmp", "version B of the list config\n", 0o644)
	must(t, os.Chtimes(src+"/config.pck.tmp", fi.ModTime(), fi.ModTime()))
	must(t, os.Rename(src+"/config.pck.tmp", src+"/config.pck"))
	code, out, e := msync("catchup", src, dst, "--state", st, "-i")
	if code != 0 {
		t.Fatalf("catchup: exit %d: %s", code, e)
	}
	if b, _ := os.ReadFile(dst + "/config.pck"); string(b) != "version B of the list config\n" {
		t.Fatalf("the replaced file was not copied: %q\n%s", b, out)
	}
	if strings.Contains(out, "other") {
		t.Errorf("an unchanged file was copied again:\n%s", out)
	}
	mustRsyncClean(t, src, dst)
}
