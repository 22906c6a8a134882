package rsync

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/msync/msync/record"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
)

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stockLeft is what `rsync -aH --delete -c -n -i` would still change in
// dst, one line each, sorted.
func stockLeft(t *testing.T, bin, src, dst string) string {
	t.Helper()
	out, err := exec.Command(bin, "-aH", "--numeric-ids", "--delete", "-c", "-n", "-i", src+"/", dst+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("rsync -n: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// A catch-up push into stock rsync deletes what msync put there and the
// source no longer has, judged by stock rsync: a deleted subtree, a file
// whose name is full of pattern characters (a DST name its unescaped
// pattern would match stays, as does a name msync never put there), a
// file that became a directory and a directory that became a file. With
// --final, a source that moved during the run is reported path by path
// (a mode change, a file vanished, one appeared, their directory) and
// recorded as a final pass that was not quiet; a quiet one as quiet.
func TestPushDeletionsAndFinalRecheck(t *testing.T) {
	bin := rsynctest.Binaries(t)[0].Path
	base := t.TempDir()
	src, dst, sd := base+"/src", base+"/dst", base+"/state"
	for _, n := range []string{"a", "keep", "sub/deep/x", "sub/y", "w*ld[1]?", "t", "u/f"} {
		writeFile(t, filepath.Join(src, n), n)
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	port := rsynctest.StartDaemon(t, bin, rsynctest.Module{Name: "data", Path: base})
	ep := Endpoint{Daemon: true, Host: "127.0.0.1", Port: port, Module: "data", Path: "dst", Name: fmt.Sprintf("rsync://127.0.0.1:%d/data/dst", port)}
	ctx := context.Background()
	push := func(kind engine.Kind, final bool, onItem func(engine.Item)) *record.Result {
		t.Helper()
		res, err := Push(ctx, PushOptions{Endpoint: ep, Src: src, StateDir: sd, Kind: kind, Final: final, OnItem: onItem})
		if err != nil {
			t.Fatalf("%s push: %v", kind, err)
		}
		if !res.Committed || res.Stats.Failed != 0 {
			t.Fatalf("%s push: %+v", kind, res)
		}
		return res
	}
	push(engine.Initial, false, nil)
	if d := stockLeft(t, bin, src, dst); d != "" {
		t.Fatalf("after the initial push, rsync finds:\n%s", d)
	}

	writeFile(t, dst+"/not-msyncs", "stays")
	writeFile(t, dst+"/w1ld11x", "the deleted name's pattern, unescaped, matches this one")
	for _, n := range []string{"sub", "w*ld[1]?", "t", "u"} {
		if err := os.RemoveAll(filepath.Join(src, n)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, src+"/t/inner", "a file became a directory")
	writeFile(t, src+"/u", "a directory became a file")
	var items []string
	moved := false
	res := push(engine.Catchup, true, func(it engine.Item) {
		items = append(items, it.Code+" "+it.Path)
		if !moved {
			// The receiver has the list: the source moves under the run.
			moved = true
			must := func(err error) {
				if err != nil {
					t.Error(err)
				}
			}
			must(os.Chmod(src+"/keep", 0o600))
			must(os.Remove(src + "/a"))
			writeFile(t, src+"/appeared", "new")
		}
	})
	wantItems := []string{"*deleting   sub", "*deleting   u/f", "*deleting   w*ld[1]?", ">f.st...... u", ">f+++++++++ t/inner"}
	sort.Strings(items)
	sort.Strings(wantItems)
	if !slices.Equal(items, wantItems) {
		t.Errorf("items:\n%s\nwant:\n%s", strings.Join(items, "\n"), strings.Join(wantItems, "\n"))
	}
	if s := res.Stats; s.Deleted != 3 || s.Created != 1 || s.Updated != 1 {
		t.Errorf("stats: %+v", s)
	}
	if got, want := strings.Join(res.NotQuiet, ","), ",a,appeared,keep"; got != want {
		t.Errorf("not quiet: %q, want %q", got, want)
	}
	for _, n := range []string{"sub", "w*ld[1]?", "u/f"} {
		if _, err := os.Lstat(filepath.Join(dst, n)); err == nil {
			t.Errorf("%s: deleted at the source, still at the destination", n)
		}
	}
	push(engine.Catchup, false, nil)
	if d, want := stockLeft(t, bin, src, dst), "*deleting   not-msyncs\n*deleting   w1ld11x"; d != want {
		t.Errorf("after the catch-up, rsync finds:\n%s\nwant:\n%s", d, want)
	}
	if res := push(engine.Catchup, true, nil); len(res.NotQuiet) != 0 {
		t.Errorf("a quiet source reported as moved: %q", res.NotQuiet)
	}

	passes, err := state.Passes(sd)
	if err != nil || len(passes) != 4 {
		t.Fatalf("passes: %d, %v", len(passes), err)
	}
	for i, want := range []struct {
		kind  string
		quiet *bool
	}{{"initial", nil}, {"final", new(false)}, {"catchup", nil}, {"final", new(true)}} {
		p := passes[i]
		if p.Kind != want.kind || (p.Quiet == nil) != (want.quiet == nil) || p.Quiet != nil && *p.Quiet != *want.quiet ||
			!p.OK || p.Src != src || p.Dst != ep.Name || p.Phases.Transfer <= 0 || p.Duration <= 0 || i > 0 && p.GapSeconds <= 0 {
			t.Errorf("pass %d: %+v, want kind %s, quiet %v", i, p, want.kind, want.quiet)
		}
	}
	if passes[1].Stats.Deleted != 3 || passes[1].Stats.Entries != res.Stats.Entries {
		t.Errorf("final pass record's stats: %+v", passes[1].Stats)
	}
}
