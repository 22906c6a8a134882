package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msync/msync/sync/class"
	"github.com/msync/msync/sync/engine"
)

func withClass(n class.Name, c class.Config) func(*engine.Options) {
	return func(o *engine.Options) {
		o.Rules = n.Rules(c)
		o.Exclude = append(o.Exclude, n.Excludes()...)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// darcs: a repository's hashed_inventory and format are written only after
// every patch, inventory and pristine file of the repository is in place.
func TestDarcsPointerFilesLast(t *testing.T) {
	for _, rules := range []bool{true, false} {
		t.Run(fmt.Sprintf("rules=%v", rules), func(t *testing.T) {
			base := t.TempDir()
			src, dst := base+"/src", base+"/dst"
			var content []string
			for _, repo := range []string{"a", "b"} {
				d := src + "/" + repo + "/_darcs"
				write(t, d+"/hashed_inventory", "pointer "+repo, 0o644)
				write(t, d+"/format", "hashed\ndarcs-2\n", 0o644)
				for i := range 60 {
					for _, sub := range []string{"patches", "pristine.hashed", "inventories"} {
						p := fmt.Sprintf("%s/%s/%010d-%032x", repo, sub, i, i)
						write(t, src+"/"+repo+"/_darcs/"+strings.TrimPrefix(p, repo+"/"), strings.Repeat("x", 2000+i), 0o644)
						content = append(content, repo+"/_darcs/"+strings.TrimPrefix(p, repo+"/"))
					}
				}
			}
			var mu sync.Mutex
			var early []string
			setHooks(t, func(p string) {
				if filepath.Base(p) != "hashed_inventory" && filepath.Base(p) != "format" {
					return
				}
				repo := strings.SplitN(p, "/", 2)[0]
				for _, c := range content {
					if strings.HasPrefix(c, repo+"/") && !exists(filepath.Join(dst, c)) {
						mu.Lock()
						early = append(early, p+" before "+c)
						mu.Unlock()
						return
					}
				}
			}, nil)
			mod := func(o *engine.Options) { o.Workers = 4 }
			if rules {
				mod = func(o *engine.Options) { o.Workers = 4; withClass(class.Darcs, class.Config{})(o) }
			}
			runPass(t, engine.Initial, src, dst, base+"/state", mod)
			if rules && len(early) > 0 {
				t.Fatalf("pointer files written before the repository's content: %v", early)
			}
			if !rules && len(early) == 0 {
				t.Fatalf("without the darcs rules a pointer file should go first in manifest order; the check saw none")
			}
			mustRsyncClean(t, src, dst)
		})
	}
}

// darcs: a content-addressed file present at DST with the same size is not
// copied or compared again, even when its mtime differs; a generic tree
// copies it.
func TestDarcsImmutableNotRecopied(t *testing.T) {
	for _, rules := range []bool{true, false} {
		t.Run(fmt.Sprintf("rules=%v", rules), func(t *testing.T) {
			base := t.TempDir()
			src, dst, st := base+"/src", base+"/dst", base+"/state"
			rel := "r/_darcs/patches/0000000005-abc.gz"
			write(t, src+"/"+rel, "hello", 0o644)
			write(t, src+"/r/_darcs/hashed_inventory", "inv", 0o644)
			mod := func(o *engine.Options) {}
			if rules {
				mod = withClass(class.Darcs, class.Config{})
			}
			runPass(t, engine.Initial, src, dst, st, mod)
			// Same size, other bytes at DST (what a content-addressed name
			// rules out), and a touched source.
			must(t, os.WriteFile(dst+"/"+rel, []byte("HELLO"), 0o644))
			later := time.Now().Add(time.Hour)
			must(t, os.Chtimes(src+"/"+rel, later, later))
			var items []string
			runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) {
				mod(o)
				o.OnItem = func(it engine.Item) { items = append(items, it.String()) }
			})
			got, _ := os.ReadFile(dst + "/" + rel)
			fi, _ := os.Stat(dst + "/" + rel)
			if rules {
				if string(got) != "HELLO" {
					t.Fatalf("content-addressed file was copied again: %q, items %v", got, items)
				}
				if !fi.ModTime().Equal(later) {
					t.Fatalf("mtime not brought in line: %v", fi.ModTime())
				}
				if len(items) != 1 || !strings.HasPrefix(items[0], ".f..t") {
					t.Fatalf("items %v, want one metadata-only change", items)
				}
			} else if string(got) != "hello" {
				t.Fatalf("generic tree: content not copied: %q", got)
			}
		})
	}
}

// exim: half pairs wait outside --final, -H is written after its -D, queue
// counts of both sides are recorded.
func TestEximPairs(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	ids := []string{"1aaaaa-000001-AA", "1bbbbb-000002-BB", "1ccccc-000003-CC", "1ddddd-000004-DD"}
	write(t, src+"/input/"+ids[0]+"-D", strings.Repeat("body\n", 800000), 0o640)
	write(t, src+"/input/"+ids[0]+"-H", "headers", 0o640)
	write(t, src+"/input/"+ids[1]+"-D", "body only, -H not written yet", 0o640)
	write(t, src+"/input/"+ids[2]+"-H", "headers only, -D already gone", 0o640)
	write(t, src+"/input/"+ids[3]+"-D", strings.Repeat("body\n", 800000), 0o640)
	write(t, src+"/input/"+ids[3]+"-H", "headers", 0o640)
	write(t, src+"/msglog/"+ids[0], "log", 0o640)
	var mu sync.Mutex
	var bad []string
	setHooks(t, func(p string) {
		if strings.HasSuffix(p, "-H") && !exists(filepath.Join(dst, strings.TrimSuffix(p, "-H")+"-D")) {
			mu.Lock()
			bad = append(bad, p)
			mu.Unlock()
		}
	}, nil)
	res := runPass(t, engine.Initial, src, dst, st, withClass(class.EximSpool, class.Config{}))
	if len(bad) > 0 {
		t.Fatalf("-H written before its -D: %v", bad)
	}
	for i, want := range []bool{true, false, false, true} {
		for _, part := range []string{"-D", "-H"} {
			p := dst + "/input/" + ids[i] + part
			if exists(p) && !want {
				t.Errorf("half pair %s copied outside --final", p)
			}
			if !exists(p) && want && (i != 1 || part == "-D") && (i != 2 || part == "-H") {
				t.Errorf("%s missing", p)
			}
		}
	}
	if res.Stats.Held != 2 {
		t.Errorf("held %d, want 2 (problems %v)", res.Stats.Held, res.Problems)
	}
	if res.Queue == nil || res.Queue.Src != 3 || res.Queue.Dst != 2 {
		t.Errorf("queue counts %+v, want src 3 (-H files), dst 2", res.Queue)
	}
	// The final pass copies the queue as it is.
	res = runPass(t, engine.Catchup, src, dst, st, func(o *engine.Options) {
		withClass(class.EximSpool, class.Config{Final: true})(o)
		o.Final = true
	})
	if res.Stats.Held != 0 || len(res.NotQuiet) != 0 {
		t.Fatalf("final: held %d, not quiet %v", res.Stats.Held, res.NotQuiet)
	}
	mustRsyncClean(t, src, dst)
}

// mailman-qfiles: *.tmp and *.bak are skipped, a vanishing queue file is
// not an error, bad/ and shunt/ entries older than max_age stay behind.
func TestQfilesClass(t *testing.T) {
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	old := time.Now().Add(-10 * 24 * time.Hour)
	write(t, src+"/in/1.pck", "queued", 0o660)
	write(t, src+"/in/2.pck.tmp", "being written", 0o660)
	write(t, src+"/out/3.pck.bak", "being processed", 0o660)
	write(t, src+"/out/4.pck", "vanishes", 0o660)
	write(t, src+"/bad/old.pck", "old failure", 0o660)
	write(t, src+"/shunt/old.pck", "old shunt", 0o660)
	write(t, src+"/bad/new.pck", "new failure", 0o660)
	for _, p := range []string{"/bad/old.pck", "/shunt/old.pck"} {
		must(t, os.Chtimes(src+p, old, old))
	}
	setHooks(t, func(p string) {
		if p == "out/4.pck" {
			os.Remove(src + "/out/4.pck")
		}
	}, nil)
	res := runPass(t, engine.Initial, src, dst, st, withClass(class.MailmanQfiles, class.Config{MaxAge: 7 * 24 * time.Hour}))
	for p, want := range map[string]bool{"in/1.pck": true, "in/2.pck.tmp": false, "out/3.pck.bak": false,
		"out/4.pck": false, "bad/old.pck": false, "shunt/old.pck": false, "bad/new.pck": true} {
		if exists(dst+"/"+p) != want {
			t.Errorf("%s at DST: %v, want %v", p, !want, want)
		}
	}
	if res.Stats.Vanished != 0 || res.Stats.Failed != 0 {
		t.Errorf("vanished %d failed %d: a vanishing queue file must not be an error", res.Stats.Vanished, res.Stats.Failed)
	}
	if res.Stats.Held != 2 {
		t.Errorf("held %d, want 2", res.Stats.Held)
	}
	var listed int
	for _, p := range res.Problems {
		if strings.Contains(p.Err, "left behind") && p.Skipped {
			listed++
		}
	}
	if listed != 2 {
		t.Errorf("left-behind entries listed %d times, want 2: %v", listed, res.Problems)
	}
	// Without the class the same vanishing file is an error (exit 24).
	setHooks(t, func(p string) {
		if p == "in/5.pck" {
			os.Remove(src + "/in/5.pck")
		}
	}, nil)
	write(t, src+"/in/5.pck", "vanishes too", 0o660)
	res = runPass(t, engine.Catchup, src, dst, st, nil)
	if res.Stats.Vanished != 1 {
		t.Errorf("generic: vanished %d, want 1", res.Stats.Vanished)
	}
}

// mailman-archives: a grown mbox goes by the append path between local
// trees, where a generic tree copies it whole.
func TestMailmanArchivesAppend(t *testing.T) {
	for _, rules := range []bool{true, false} {
		t.Run(fmt.Sprintf("rules=%v", rules), func(t *testing.T) {
			base := t.TempDir()
			src, dst, st := base+"/src", base+"/dst", base+"/state"
			mb := src + "/private/l.mbox/l.mbox"
			write(t, mb, strings.Repeat("From a@b Mon Jan  1 00:00:00 2001\nSubject: x\n\nbody\n\n", 20000), 0o664)
			mod := func(o *engine.Options) {}
			if rules {
				mod = withClass(class.MailmanArchives, class.Config{})
			}
			runPass(t, engine.Initial, src, dst, st, mod)
			appendTo(t, mb, "From c@d Tue Jan  2 00:00:00 2001\nSubject: y\n\nnew\n\n")
			res := runPass(t, engine.Catchup, src, dst, st, mod)
			if rules && (res.Stats.Appended != 1 || res.Stats.Literal > 1000) {
				t.Fatalf("appended %d literal %d: want the tail alone", res.Stats.Appended, res.Stats.Literal)
			}
			if !rules && res.Stats.Appended != 0 {
				t.Fatalf("generic local tree used the append path")
			}
			mustRsyncClean(t, src, dst)
		})
	}
}
