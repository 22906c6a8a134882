package remote

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/internal/testkit"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/wire"
)

// A served tree whose scan problems together exceed a frame (a few dozen
// paths near the 32 KiB limit, which anyone who can write in the tree, or
// push into a module, can make) ends its scan with the first problems: the
// serving end neither panics (its scan runs on a goroutine of its own, so
// a panic there ends the whole daemon) nor sends an end the peer refuses.
func TestServedScanEndWithHugeProblems(t *testing.T) {
	dir := t.TempDir()
	const want = 24 // scan problems, each naming its path (about 32 KiB) twice
	testkit.TooLongPaths(t, dir, want)
	c, errc := pipe(t, anyPath)
	defer func() {
		c.Close()
		if err := <-errc; err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	ctx := context.Background()
	s, err := c.OpenSource(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.Scan(ctx, tree.ScanConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for {
		_, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
	}
	ps := sc.Problems()
	if len(ps) == 0 || len(ps) > want {
		t.Fatalf("%d problems reached the client, want between 1 and %d", len(ps), want)
	}
	for _, p := range ps {
		if p.Path == "" || p.Err == nil || !strings.Contains(p.Err.Error(), "name too long") {
			t.Errorf("problem %.60q: %.80v", p.Path, p.Err)
		}
	}
}

// A panic while the serving end answers a request of its peer (reading a
// file, a delta against the peer's signature) happens on a goroutine of
// its own, where it would end the whole daemon: it ends the connection,
// and the file fails, naming it.
func TestPanicServingAFileEndsTheConnectionOnly(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeTree(t, src, map[string]string{"f": "data"})
	testHookSend = func() { panic("a bug") }
	defer func() { testHookSend = func() {} }()
	c, errc := pipe(t, anyPath)
	defer c.Close()
	s, err := c.OpenSource(context.Background(), src, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := engine.Run(context.Background(), engine.Options{Kind: engine.Initial, Src: "peer:", Dst: dst, Source: s, StateDir: filepath.Join(t.TempDir(), "st")})
	// The connection ends: the file fails with the serving end's reason,
	// or, when the scan was still streaming, the whole pass does.
	switch {
	case err != nil:
		if !strings.Contains(err.Error(), "internal error: send: a bug") {
			t.Errorf("pass failed with %v; want the serving end's internal error", err)
		}
	case res.Stats.Failed != 1 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Err, "internal error: send: a bug"):
		t.Errorf("pass: %+v; want the file failed with the serving end's internal error", res)
	}
	c.Close()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Errorf("server: %v, want an internal error", err)
	}
}

// The serving end keeps full scans of its tree per set of scan options
// for the next scan's diff; the options are the peer's (its excludes), so
// the sets it keeps are bounded: a peer scanning with a new exclude each
// time cannot fill the serving host's disk, nor push out the sets in use.
// A set unused for a day makes room for a new one.
func TestScanCacheSetsBounded(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"a": "1", "d/b": "2"})
	scan := func(exclude string) {
		t.Helper()
		c, errc := pipe(t, anyPath)
		defer func() {
			c.Close()
			<-errc
		}()
		s, err := c.OpenSource(context.Background(), src, "")
		if err != nil {
			t.Fatal(err)
		}
		sc, err := s.Scan(context.Background(), tree.ScanConfig{Exclude: []string{exclude}})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		for {
			if _, err := sc.Next(); err == io.EOF {
				return
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	top := filepath.Join(cache, "msync", "scans")
	sets := func() []os.DirEntry {
		ents, err := os.ReadDir(top)
		if err != nil {
			t.Fatal(err)
		}
		return ents
	}
	scan("first")
	first := sets()
	if len(first) != 1 {
		t.Fatalf("%d sets of kept scans after one scan", len(first))
	}
	for i := range maxScanSets + 40 {
		scan("x" + itoa(i))
	}
	if n := len(sets()); n != maxScanSets {
		t.Errorf("%d scans with distinct excludes left %d sets of kept scans, want %d", maxScanSets+41, n, maxScanSets)
	}
	if _, err := os.Stat(filepath.Join(top, first[0].Name())); err != nil {
		t.Errorf("the first set was dropped for later ones: %v", err)
	}
	old := time.Now().Add(-2 * scanSetIdle)
	if err := os.Chtimes(filepath.Join(top, first[0].Name()), old, old); err != nil {
		t.Fatal(err)
	}
	scan("new")
	if _, err := os.Stat(filepath.Join(top, first[0].Name())); err == nil {
		t.Error("a set unused for two days was kept, and a new one not made")
	}
	if n := len(sets()); n != maxScanSets {
		t.Errorf("%d sets of kept scans, want %d", n, maxScanSets)
	}
}

// What the peer running a push logs and itemizes goes to this end's
// terminal: its control sequences are escaped as names are, never passed
// on.
func TestPushPeerLogEscaped(t *testing.T) {
	var log strings.Builder
	var items []string
	p := &pushClient{h: PushHandlers{Log: &log, OnItem: func(it engine.Item) { items = append(items, it.String()) }}, done: make(chan struct{})}
	if err := p.dispatch(wire.Frame{Type: wire.TItem, Payload: wire.EncodeItem(wire.Item{Code: "\x1b[2J>f+++", Path: "a\x1bb"})}); err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0] != "\\#033[2J>f+++ a\\#033b" {
		t.Errorf("itemized %q", items)
	}
	if err := p.dispatch(wire.Frame{Type: wire.TLog, Payload: []byte("msync: \x1b]0;owned\x07 a\tb\x1b[2J\nnext line\n")}); err != nil {
		t.Fatal(err)
	}
	if got, want := log.String(), "msync: \\#033]0;owned\\#007 a\tb\\#033[2J\nnext line\n"; got != want {
		t.Errorf("logged %q, want %q", got, want)
	}
}

// A panic while the serving end decodes or dispatches a frame of its peer
// (on the connection's read loop, a goroutine of its own) ends that
// connection with an internal error, not the whole daemon.
func TestPanicOnAPeerFrameEndsTheConnectionOnly(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"f": "data"})
	testHookFrame = func(f wire.Frame) {
		if f.Type == wire.TScanReq {
			panic("a bug")
		}
	}
	defer func() { testHookFrame = func(wire.Frame) {} }()
	c, errc := pipe(t, anyPath)
	defer c.Close()
	ctx := context.Background()
	s, err := c.OpenSource(ctx, src, "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.Scan(ctx, tree.ScanConfig{})
	if err == nil {
		for err == nil {
			_, err = sc.Next()
		}
		sc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "internal error: a bug") {
		t.Errorf("scan: %v, want the serving end's internal error", err)
	}
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Errorf("server: %v, want an internal error", err)
	}
}
