package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
)

// aheadSource is a local tree seen as a remote source that may take
// requests ahead (aheadFetcher): through Source alone, it is no
// localTree. The first file's answer is read only once three files were
// asked for, or after a while.
type aheadSource struct {
	Source
	ahead     bool
	fetched   atomic.Int32
	waitedOut atomic.Bool
}

func (s *aheadSource) FetchesAhead() bool { return s.ahead }

func (s *aheadSource) Fetch(ctx context.Context, req *send.Request) (tree.Reply, error) {
	n := s.fetched.Add(1)
	r, err := s.Source.Fetch(ctx, req)
	if n == 1 && err == nil {
		return &gatedReply{Reply: r, s: s}, nil
	}
	return r, err
}

type gatedReply struct {
	tree.Reply
	s      *aheadSource
	waited bool
}

func (g *gatedReply) Read(p []byte) (int, error) {
	if !g.waited {
		g.waited = true
		deadline := time.Now().Add(2 * time.Second)
		for g.s.fetched.Load() < 3 {
			if time.Now().After(deadline) {
				g.s.waitedOut.Store(true)
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	return g.Reply.Read(p)
}

// TestFetchAhead: with one worker, a source that takes requests ahead is
// asked for the next files while the first is still being written; one
// that does not is asked one file at a time. Both copies are complete.
func TestFetchAhead(t *testing.T) {
	src := t.TempDir()
	for i := range 10 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint("content ", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, ahead := range []bool{true, false} {
		s := &aheadSource{Source: &tree.Local{Root: src}, ahead: ahead}
		if _, local := Source(s).(localTree); local {
			t.Fatal("a source seen through Source is a localTree")
		}
		dst := filepath.Join(t.TempDir(), "dst")
		res, err := Run(context.Background(), Options{Kind: Initial, Src: src, Dst: dst, Source: s,
			StateDir: t.TempDir(), Workers: 1})
		if err != nil {
			t.Fatalf("ahead %v: %v", ahead, err)
		}
		if res.Stats.Failed != 0 || res.Stats.Files != 10 {
			t.Fatalf("ahead %v: %+v", ahead, res.Stats)
		}
		for i := range 10 {
			b, err := os.ReadFile(filepath.Join(dst, fmt.Sprintf("f%02d", i)))
			if err != nil || string(b) != fmt.Sprint("content ", i) {
				t.Fatalf("ahead %v: f%02d reads %q, %v", ahead, i, b, err)
			}
		}
		if got := s.waitedOut.Load(); got == ahead {
			t.Errorf("ahead %v: the first answer waited out for more requests: %v", ahead, got)
		}
	}
}

type closeCounter struct {
	tree.Reply
	closed int
}

func (c *closeCounter) Close() { c.closed++ }

// TestDropAhead: an answer requested ahead that no attempt read is
// abandoned once, so that a source streaming it does not wait forever.
func TestDropAhead(t *testing.T) {
	r := &closeCounter{}
	j := &fileJob{ahead: true, reply: r}
	j.dropAhead()
	j.dropAhead()
	if r.closed != 1 || j.ahead || j.reply != nil {
		t.Fatalf("closed %d times, ahead %v, reply %v", r.closed, j.ahead, j.reply)
	}
	// Taken by an attempt: nothing left to drop.
	r2 := &closeCounter{}
	j = &fileJob{ahead: true, reply: r2}
	w := &worker{}
	if got, err := w.fetch(context.Background(), j, nil); got != r2 || err != nil {
		t.Fatalf("fetch returned %v, %v", got, err)
	}
	j.dropAhead()
	if r2.closed != 0 {
		t.Fatal("an answer an attempt took was closed behind its back")
	}
}
