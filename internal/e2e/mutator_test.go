package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// A helper goroutine grows, shrinks, replaces (write + rename over) and
// deletes source files for the whole length of a pass. No file at DST
// under its real name ever holds content that was not, at some moment, at
// that path at SRC; --final refuses to call the source quiet; once the
// source is still, a catch-up makes DST exact.
func TestSourceMutatedDuringPass(t *testing.T) {
	needTool(t, "rsync")
	base := t.TempDir()
	src, dst, st := base+"/src", base+"/dst", base+"/state"
	r := rand.New(rand.NewPCG(7, 7))
	var mu sync.Mutex
	allowed := contents{}
	allow := func(rel string, b []byte) {
		d := xxhash.New()
		d.Write(b)
		mu.Lock()
		if allowed[rel] == nil {
			allowed[rel] = map[string]bool{}
		}
		allowed[rel][string(d.Sum(nil))] = true
		mu.Unlock()
	}
	body := make([][]byte, 120)
	for i := range body {
		body[i] = []byte(strings.Repeat(fmt.Sprintf("line %d of file %d\n", i, i), 1+r.IntN(8000)))
		rel := fmt.Sprintf("d%d/f%d", i%6, i)
		allow(rel, body[i])
		write(t, filepath.Join(src, rel), string(body[i]), 0o644)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	mutations := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			i := r.IntN(len(body))
			rel := fmt.Sprintf("d%d/f%d", i%6, i)
			p := filepath.Join(src, rel)
			switch r.IntN(4) {
			case 0: // grow, within one page (one size update: no torn state to see)
				room := 4096 - len(body[i])%4096
				add := []byte(strings.Repeat("x", 1+r.IntN(room)))
				next := append(append([]byte(nil), body[i]...), add...)
				allow(rel, next)
				if f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0); err == nil {
					f.Write(add)
					f.Close()
					body[i] = next
				}
			case 1: // shrink
				next := body[i][:len(body[i])/2]
				allow(rel, next)
				if os.Truncate(p, int64(len(next))) == nil {
					body[i] = next
				}
			case 2: // replace: write a new file, rename it over
				next := []byte(fmt.Sprintf("replaced %d\n", r.Int()))
				allow(rel, next)
				tmp := filepath.Join(src, "tmp-mutator")
				if os.WriteFile(tmp, next, 0o644) == nil && os.Rename(tmp, p) == nil {
					body[i] = next
				}
			case 3: // delete and recreate (empty for a moment)
				allow(rel, nil)
				os.Remove(p)
				os.WriteFile(p, body[i], 0o644)
			}
			mutations++
		}
	}()
	code1, _, _ := msync("initial", src, dst, "--state", st, "--exclude", "tmp-mutator", "--workers", "1", "--fsync=file")
	code2, _, errOut := msync("catchup", src, dst, "--state", st, "--final", "--exclude", "tmp-mutator")
	close(stop)
	wg.Wait()
	checkNothingInvented(t, dst, st, allowed)
	if code2 != 24 && code2 != 23 {
		t.Errorf("--final while the source changed: exit %d, want 24 (or 23):\n%s", code2, errOut)
	}
	if code, _, e := msync("catchup", src, dst, "--state", st, "--exclude", "tmp-mutator"); code != 0 {
		t.Fatalf("catch-up on a still source: exit %d: %s", code, e)
	}
	if n := checkNothingInvented(t, dst, st, allowed); n != 0 {
		t.Errorf("%d temp files left", n)
	}
	mustRsyncClean(t, src, dst)
	t.Logf("%d mutations during two passes (exit %d, %d); nothing torn committed", mutations, code1, code2)
}
