package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/transport/rsync"
	"golang.org/x/sys/unix"
)

// wholeSeconds drops the sub-second part of every mtime under root:
// rsync's protocol 27, which msync speaks to stock rsync, carries whole
// seconds (as the ext3 disks of the old hosts it serves do).
func wholeSeconds(t *testing.T, root string) {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p) // after their contents, below
			return nil
		}
		return truncMtime(p)
	})
	must(t, err)
	for i := len(dirs) - 1; i >= 0; i-- {
		must(t, truncMtime(dirs[i]))
	}
}

func truncMtime(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	ts := []unix.Timespec{{Sec: st.Mtim.Sec}, {Sec: st.Mtim.Sec}}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// stockDiff is the judge: what `rsync -aH --delete -c -n -i`
// would still change in dst.
func stockDiff(t *testing.T, src, dst string) string {
	t.Helper()
	args := []string{"-aH", "--delete", "-c", "-n", "-i", src + "/", dst + "/"}
	if isRoot() {
		args = append([]string{"--numeric-ids"}, args...)
	}
	out, err := exec.Command(needTool(t, "rsync"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rsync %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// msync pulls from and pushes to stock rsync 3.5.0 and 3.2.7, their
// daemons and over ssh: initial, a catch-up after every kind of change
// (with a DST file msync did not put there, which stays), and a pass with
// nothing to do; rsync -aH --delete -c -n -i finds nothing else after each.
func TestStockRsyncMatrix(t *testing.T) {
	for _, bin := range rsynctest.Binaries(t) {
		for _, via := range []string{"daemon", "ssh"} {
			for _, dir := range []string{"pull", "push"} {
				t.Run(bin.Name+"/"+via+"/"+dir, func(t *testing.T) { stockCell(t, bin, via, dir) })
			}
		}
	}
}

func stockCell(t *testing.T, bin rsynctest.Binary, via, dir string) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	must(t, os.Mkdir(src, 0o755))
	must(t, os.Mkdir(dst, 0o755))
	buildTree(t, src)
	write(t, src+"/large/100M", "", 0o644)
	must(t, os.Truncate(src+"/large/100M", 100<<20))
	write(t, src+"/glob[1]*?\\", "a name full of pattern characters", 0o644)
	wholeSeconds(t, src)
	far := src // the side stock rsync serves
	if dir == "push" {
		far = dst
	}
	var url string
	flags := []string{"--state", st}
	if via == "daemon" {
		port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base, ReadOnly: dir == "pull"})
		url = fmt.Sprintf("rsync://127.0.0.1:%d/data/%s", port, filepath.Base(far))
	} else {
		flags = append(flags, needSSHD(t)[:2]...)
		flags = append(flags, "--rsync", "--rsync-path", bin.Path)
		url = "127.0.0.1:" + far
	}
	from, to := url, dst
	if dir == "push" {
		from, to = src, url
	}
	judge := func(when, want string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(stockDiff(t, src, dst)), "\n")
		sort.Strings(lines)
		if d := strings.Join(lines, "\n"); d != want {
			t.Fatalf("after %s, rsync -aH --delete -c -n -i finds:\n%s\nwant:\n%s", when, d, want)
		}
	}
	r := runJSON(t, append([]string{"initial", from, to}, flags...)...)
	if !r.Result.Committed || r.Result.Stats.Files == 0 || r.Result.Stats.Wire == 0 {
		t.Fatalf("initial: %+v", r)
	}
	judge("initial", "")

	// Whole-second mtimes cannot tell a same-size rewrite within the
	// second the last pass read the file (rsync's quick check has the same
	// blind spot): change the tree in a later second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	write(t, dst+"/extraneous", "not msync's", 0o644)
	// The pattern of the deleted glob[1]*?\ would match this one, unescaped.
	write(t, dst+"/glob1xx\\", "not msync's either", 0o644)
	mutateTree(t, src)
	must(t, os.Remove(src+"/glob[1]*?\\"))
	wholeSeconds(t, src)
	r = runJSON(t, append([]string{"catchup", from, to}, flags...)...)
	if s := r.Result.Stats; s.Created == 0 || s.Updated == 0 || s.Deleted == 0 {
		t.Errorf("catch-up: want creations, updates and deletions: %+v", s)
	}
	if s := r.Result.Stats; s.Deltas < 2 || s.Literal > 256<<10 {
		// big.bin (3 MiB, 1000 bytes rewritten) and the grown mbox cross as
		// rsync deltas: against msync's block sums of its old copies
		// (pull), or stock rsync's block sums matched by msync (push).
		t.Errorf("%s catch-up: want deltas and few literal bytes: %+v", dir, s)
	}
	kept := "*deleting   extraneous\n*deleting   glob1xx\\"
	judge("catch-up", kept)
	r = runJSON(t, append([]string{"catchup", from, to}, flags...)...)
	if s := r.Result.Stats; s.Created+s.Updated+s.Deleted != 0 || s.Literal != 0 {
		t.Errorf("a pass with nothing to do changed something: %+v", s)
	}
	judge("an idle pass", kept)

	// verify against stock rsync compares rsync's MD4 of every file, and
	// says so; a flipped byte that keeps size and mtime is found.
	code, out, errOut := msync(append([]string{"verify", from, to}, flags...)...)
	if code != 1 || !strings.Contains(out, "MD4 of every file") || !strings.Contains(out, "+ extraneous") {
		t.Fatalf("verify: exit %d, want 1 (the extraneous file) and the MD4 method:\n%s%s", code, out, errOut)
	}
	flipByteKeepTimes(t, dst+"/page")
	code, out, errOut = msync(append([]string{"verify", from, to}, flags...)...)
	if code != 1 || !strings.Contains(out, "* page (content)") {
		t.Fatalf("verify of a corrupted copy: exit %d\n%s%s", code, out, errOut)
	}
}

// What the rsync transport cannot do is refused by name, not ignored.
func TestStockRsyncRefusals(t *testing.T) {
	base := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"initial", base, "rsync://127.0.0.1:1/m/x", "--dry-run"}, "pushing to stock rsync: not supported with --dry-run"},
		{[]string{"catchup", base, "127.0.0.1:" + base + "/x", "--rsync", "--trust-dest", "--delta", "always"}, "not supported with --trust-dest, --delta=always"},
		{[]string{"initial", base, base + "/d", "--rsync"}, "--rsync applies to a host:path endpoint"},
		{[]string{"initial", "rsync://127.0.0.1/", base + "/d"}, "want rsync://host[:port]/module[/path]"},
	} {
		code, _, errOut := msync(c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("msync %s: exit %d, want 2 and %q:\n%s", strings.Join(c.args, " "), code, c.want, errOut)
		}
	}
}

// startRsyncServe runs msync's rsync daemon (msync serve --rsync) on
// loopback with module "data" at base, and returns its port.
func startRsyncServe(t *testing.T, base string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var log bytes.Buffer
	srv := &rsync.Server{Modules: []rsync.Module{{Name: "data", Path: base}}, StateDir: t.TempDir(), Log: &log}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// Stock rsync 3.5.0 and 3.2.7 clients pull from and push to msync, as the
// daemon (msync serve --rsync) and over ssh (--rsync-path="msync
// rsync-server"): initial, catch-up after every kind of change (--delete),
// idle pass; rsync -aH --delete -c -n -i finds nothing after each.
func TestStockClientsAgainstServe(t *testing.T) {
	for _, bin := range rsynctest.Binaries(t) {
		for _, cell := range []string{"daemon/pull", "daemon/push", "ssh/pull", "ssh/push"} {
			via, dir, _ := strings.Cut(cell, "/")
			t.Run(bin.Name+"/"+cell, func(t *testing.T) {
				base := t.TempDir()
				src, dst := base+"/src", base+"/dst"
				must(t, os.Mkdir(src, 0o755))
				must(t, os.Mkdir(dst, 0o755))
				buildTree(t, src)
				write(t, src+"/large/100M", "", 0o644)
				must(t, os.Truncate(src+"/large/100M", 100<<20))
				wholeSeconds(t, src)
				var url string
				var shell []string
				if via == "daemon" {
					url = fmt.Sprintf("rsync://127.0.0.1:%d/data/", startRsyncServe(t, base))
				} else {
					needSSHD(t)
					url = "127.0.0.1:" + base + "/"
					// The far side's state goes to the test's directory, not
					// to the home of the user running the tests.
					shell = []string{"-e", sshCommand(), "--rsync-path", "MSYNC_E2E_MAIN=1 XDG_STATE_HOME=" + base + "/state " + os.Args[0] + " rsync-server"}
				}
				from, to := url+"src/", dst+"/"
				if dir == "push" {
					from, to = src+"/", url+"dst/"
				}
				stock := func(when string) {
					t.Helper()
					args := append(append([]string{"-aH", "--delete", "--numeric-ids", "--stats"}, shell...), from, to)
					out, err := exec.Command(bin.Path, args...).CombinedOutput()
					if err != nil {
						t.Fatalf("%s: rsync %s: %v\n%s", when, strings.Join(args, " "), err, out)
					}
					if m := regexp.MustCompile(`Matched data: ([\d,]+) bytes`).FindSubmatch(out); when == "catch-up" && dir == "pull" &&
						(m == nil || string(m[1]) == "0") {
						// The client's block sums are matched by msync's sender.
						t.Errorf("catch-up pulled from msync matched nothing:\n%s", out)
					}
					if d := stockDiff(t, src, dst); d != "" {
						t.Fatalf("after %s, rsync -aH --delete -c -n -i finds:\n%s", when, d)
					}
				}
				stock("initial")
				time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
				write(t, dst+"/extraneous", "deleted by --delete", 0o644)
				mutateTree(t, src)
				wholeSeconds(t, src)
				stock("catch-up")
				stock("an idle pass")
				if via == "ssh" && dir == "push" {
					if ds, _ := filepath.Glob(base + "/state/msync/rsync-shell-to-dst-*/src.manifest"); len(ds) != 1 {
						t.Errorf("the pushes' state: %q, want one dataset under the test's XDG_STATE_HOME", ds)
					}
				}
			})
		}
	}
}

// What msync serve --rsync cannot do is refused with the option's name.
func TestServeRefusesUnsupportedOptions(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	write(t, base+"/src/f", "x", 0o644)
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/", startRsyncServe(t, base))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-a", "-c", base + "/src/", url + "dst/"}, "-c"},
		{[]string{"-a", "--inplace", base + "/src/", url + "dst/"}, "--inplace"},
		{[]string{"-a", "--include=f", "--exclude=*", url + "src/", base + "/out/"}, "exclude rules only"},
	} {
		out, err := exec.Command(bin.Path, c.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), "msync") || !strings.Contains(string(out), c.want) {
			t.Errorf("rsync %s: %v, want exit 4 (unsupported) and a refusal naming %q:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
}

// -i and --stats work against stock rsync, pulling and pushing.
func TestStockRsyncItemizeAndStats(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	write(t, base+"/src/dir/f", "content", 0o644)
	must(t, os.Mkdir(base+"/pushed", 0o755))
	port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base})
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/", port)
	for _, c := range [][]string{
		{"initial", url + "src", base + "/pulled", "--state", base + "/st1", "-i", "--stats"},
		{"initial", base + "/src", url + "pushed", "--state", base + "/st2", "-i", "--stats"},
	} {
		code, out, errOut := msync(c...)
		if code != 0 || !strings.Contains(out, ">f+++++++++ dir/f") || !strings.Contains(out, "Number of files: 3 (reg: 1, dir: 2") {
			t.Errorf("msync %s: exit %d\n%s%s", strings.Join(c, " "), code, out, errOut)
		}
	}
}

// A panic while serving one connection is logged and never stops the
// daemon: the next client is served.
func TestServeSurvivesAPanic(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	write(t, base+"/src/f", "x", 0o644)
	write(t, base+"/src/boom/g", "served, were it not for the panic", 0o644)
	rsync.TestHooks.BeforeRequest = func(args []string) {
		if strings.Contains(strings.Join(args, " "), "src/boom") {
			panic("injected")
		}
	}
	defer func() { rsync.TestHooks.BeforeRequest = nil }()
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/", startRsyncServe(t, base))
	if out, err := exec.Command(bin.Path, "-a", url+"src/boom/", base+"/x/").CombinedOutput(); err == nil {
		t.Fatalf("the panicking request succeeded:\n%s", out)
	}
	if out, err := exec.Command(bin.Path, "-a", url+"src/", base+"/out/").CombinedOutput(); err != nil {
		t.Fatalf("after a panic, the daemon did not serve: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(base + "/out/f"); err != nil || string(b) != "x" {
		t.Fatalf("pulled %q, %v", b, err)
	}
}

// Requests shaped every way a stock client sends them (a directory with and
// without its trailing slash, one file, a push of a directory without one)
// land exactly as they do against a stock rsync daemon.
func TestServeRequestShapes(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	base := t.TempDir()
	buildTree(t, base+"/src")
	wholeSeconds(t, base+"/src")
	stockPort := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base})
	msyncPort := startRsyncServe(t, base)
	for i, shape := range []struct{ from, to string }{
		{"URL/src/deep", "OUT/"},
		{"URL/src/deep/", "OUT/"},
		{"URL/src/page", "OUT/"},
		{"URL/src", "OUT/"},
		{base + "/src/deep", "URL/DIR/"},
		{base + "/src/deep/", "URL/DIR/"},
	} {
		var outs []string
		for _, port := range []int{stockPort, msyncPort} {
			dir := fmt.Sprintf("out%d-%d", i, port)
			must(t, os.MkdirAll(base+"/"+dir, 0o755))
			url := fmt.Sprintf("rsync://127.0.0.1:%d/data", port)
			r := strings.NewReplacer("URL", url, "OUT", base+"/"+dir, "DIR", dir)
			args := []string{"-aH", "--numeric-ids", r.Replace(shape.from), r.Replace(shape.to)}
			if out, err := exec.Command(bin.Path, args...).CombinedOutput(); err != nil {
				t.Fatalf("rsync %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			// The top of OUT is not always part of the transfer (one file,
			// "dir" without a slash): its mtime is that of the run.
			must(t, os.Chtimes(base+"/"+dir, time.Unix(1e9, 0), time.Unix(1e9, 0)))
			outs = append(outs, base+"/"+dir)
		}
		if d := stockDiff(t, outs[0], outs[1]); d != "" {
			t.Errorf("%s -> %s: msync serve --rsync differs from stock rsync's daemon:\n%s", shape.from, shape.to, d)
		}
	}
}
