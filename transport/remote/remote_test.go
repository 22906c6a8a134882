package remote

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/wire"
	"github.com/msync/msync/verify"
)

// pipe connects a client Conn to Serve over an in-memory connection.
func pipe(t *testing.T, resolve func(*wire.OpenRequest) (string, error)) (*Conn, chan error) {
	t.Helper()
	a, b := net.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- Serve(context.Background(), b, ServerConfig{Resolve: resolve}) }()
	c, err := NewConn(a, Options{Name: "peer:"})
	if err != nil {
		t.Fatal(err)
	}
	return c, errc
}

func anyPath(req *wire.OpenRequest) (string, error) { return req.Path, nil }

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustIdentical(t *testing.T, src, dst string) {
	t.Helper()
	rep, err := verify.Run(context.Background(), verify.Options{Src: src, Dst: dst})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical {
		var b bytes.Buffer
		verify.WriteText(&b, rep)
		t.Fatalf("trees differ:\n%s", b.String())
	}
}

func TestPullAndPush(t *testing.T) {
	src, dst, dst2 := t.TempDir(), t.TempDir(), t.TempDir()
	pullState, pushState := filepath.Join(t.TempDir(), "st"), filepath.Join(t.TempDir(), "pst")
	big := strings.Repeat("mailing list archive line\n", 40000)
	writeTree(t, src, map[string]string{"a.txt": "hello", "d/e/f": "deep", "list.mbox": big, "empty": ""})
	for pass, kind := range []engine.Kind{engine.Initial, engine.Catchup} {
		if pass == 1 {
			writeTree(t, src, map[string]string{"list.mbox": big + "From new message\n", "new": "x"})
			os.Remove(filepath.Join(src, "a.txt"))
		}
		c, errc := pipe(t, anyPath)
		s, err := c.OpenSource(context.Background(), src, "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := engine.Run(context.Background(), engine.Options{Kind: kind, Src: "peer:" + src, Dst: dst, Source: s, StateDir: pullState, Xattrs: true})
		if err != nil {
			t.Fatalf("pull %s: %v", kind, err)
		}
		c.Close()
		if err := <-errc; err != nil {
			t.Fatalf("server: %v", err)
		}
		mustIdentical(t, src, dst)
		if pass == 1 && res.Stats.Appended != 1 {
			t.Errorf("pull catch-up: %d appends, want 1 (stats %+v)", res.Stats.Appended, res.Stats)
		}

		c, errc = pipe(t, anyPath)
		local := tree.NewLocal(src)
		res, err = c.Push(context.Background(), local, dst2, "", PushOptions{Kind: kind, SrcName: "here:" + src, StateDir: pushState, Xattrs: true}, PushHandlers{})
		if err != nil {
			t.Fatalf("push %s: %v", kind, err)
		}
		c.Close()
		<-errc
		mustIdentical(t, src, dst2)
		if res.Stats.Files == 0 {
			t.Errorf("push result has no files: %+v", res.Stats)
		}
	}
}

// A catch-up's scan comes as a diff against the last full scan both ends
// kept: a no-change pass moves a small fraction of the first scan's bytes.
// A base that does not match on the serving end is caught by the scan's
// sum: the pass fails cleanly and the next one starts from a full scan.
func TestScanDiffs(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	src, dst := t.TempDir(), t.TempDir()
	files := map[string]string{}
	for i := range 3000 {
		files[filepath.Join("d"+strings.Repeat("x", i%7), "file"+strings.Repeat("y", i%5)+string(rune('a'+i%26))+itoa(i))] = "content " + itoa(i)
	}
	writeTree(t, src, files)
	st := filepath.Join(t.TempDir(), "st")
	pull := func() (*record.Result, int64, error) {
		c, errc := pipe(t, anyPath)
		defer func() { c.Close(); <-errc }()
		s, err := c.OpenSource(context.Background(), src, "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := engine.Run(context.Background(), engine.Options{Kind: engine.Catchup, Src: "peer:" + src, Dst: dst, Source: s, StateDir: st})
		return res, s.WireBytes(), err
	}
	_, first, err := pull()
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, src, map[string]string{"dnew/f": "new"})
	os.Remove(filepath.Join(src, "d", "filea0"))
	res, _, err := pull()
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Created < 2 || res.Stats.Deleted != 1 {
		t.Fatalf("catch-up through a diff scan: %+v", res.Stats)
	}
	mustIdentical(t, src, dst)
	_, quiet, err := pull()
	if err != nil {
		t.Fatal(err)
	}
	if quiet*10 > first {
		t.Errorf("no-change pass moved %d bytes, the first %d: the scan was not sent as a diff", quiet, first)
	}
	// Swap the serving end's kept scans for ones of another tree.
	cache, _ := os.UserCacheDir()
	kept, _ := filepath.Glob(filepath.Join(cache, "msync", "scans", "*", "*"))
	other := t.TempDir()
	writeTree(t, other, map[string]string{"zzz": "other"})
	c, errc := pipe(t, anyPath)
	s, _ := c.OpenSource(context.Background(), other, "")
	sc, _ := s.Scan(context.Background(), tree.ScanConfig{Cache: filepath.Join(t.TempDir(), "o.scan")})
	for {
		if _, err := sc.Next(); err != nil {
			break
		}
	}
	sc.Close()
	c.Close()
	<-errc
	otherKept, _ := filepath.Glob(filepath.Join(cache, "msync", "scans", "*", "*"))
	var donor string
	for _, p := range otherKept {
		if !slices.Contains(kept, p) {
			donor = p
		}
	}
	if donor == "" || len(kept) == 0 {
		t.Fatalf("kept scans: %v then %v", kept, otherKept)
	}
	b, _ := os.ReadFile(donor)
	for _, p := range kept {
		os.WriteFile(p, b, 0o600)
	}
	if _, _, err := pull(); err == nil || !errors.Is(err, wire.ErrProtocol) {
		t.Fatalf("a wrong base went unnoticed: %v", err)
	}
	if _, _, err := pull(); err != nil {
		t.Fatalf("the pass after a wrong base: %v", err)
	}
	mustIdentical(t, src, dst)
}

func itoa(i int) string { return strconv.Itoa(i) }

// File requests are pipelined: the receiver does not wait for one file
// before asking for the next. The sender holds its first answers back until
// 16 requests wait in its queue (or 5 s pass): a receiver that waits for
// each answer never gets there, whatever the machine's load.
func TestFetchesArePipelined(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	files := map[string]string{}
	for i := range 300 {
		files["f"+itoa(i)] = "small file " + itoa(i)
	}
	writeTree(t, src, files)
	a, b := net.Pipe()
	served := make(chan *Conn, 1)
	go func() {
		c, err := NewConn(b, Options{Name: "client"})
		if err != nil {
			return
		}
		c.Serve(tree.NewLocal(src))
		served <- c
		<-c.Done()
	}()
	c, err := NewConn(a, Options{Name: "slow:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := <-served
	const want = 16
	open := make(chan struct{})
	go func() {
		defer close(open)
		deadline := time.Now().Add(5 * time.Second)
		for srv.served.Load().maxQueued.Load() < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}()
	testHookSend = func() { <-open }
	defer func() { testHookSend = func() {} }()
	s := c.Source(src)
	if _, err := engine.Run(context.Background(), engine.Options{Kind: engine.Initial, Src: "slow:", Dst: dst, Source: s, StateDir: filepath.Join(t.TempDir(), "st")}); err != nil {
		t.Fatal(err)
	}
	mustIdentical(t, src, dst)
	if n := srv.served.Load().maxQueued.Load(); n < want {
		t.Errorf("at most %d file requests were waiting at the sender: not pipelined", n)
	}
}

// With compression on, text crosses in a fraction of its size and arrives
// intact; data that does not compress is sent as it is.
func TestCompressedData(t *testing.T) {
	src := t.TempDir()
	text := strings.Repeat("Received: from mail.example.org by list.example.org\n", 20000)
	noise := make([]byte, 1<<20)
	for i := range noise {
		noise[i] = byte(i*7919>>3) ^ byte(i>>11)
	}
	writeTree(t, src, map[string]string{"archive.mbox": text})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(src, "noise.bin"), noise, 0o644))
	for _, z := range []bool{false, true} {
		a, b := net.Pipe()
		errc := make(chan error, 1)
		go func() { errc <- Serve(context.Background(), b, ServerConfig{Resolve: anyPath}) }()
		c, err := NewConn(a, Options{Name: "z:", Compress: z})
		must(err)
		s, err := c.OpenSource(context.Background(), src, "")
		must(err)
		dst := t.TempDir()
		_, err = engine.Run(context.Background(), engine.Options{Kind: engine.Initial, Src: "z:", Dst: dst, Source: s, StateDir: filepath.Join(t.TempDir(), "st")})
		must(err)
		wb := s.WireBytes()
		c.Close()
		<-errc
		mustIdentical(t, src, dst)
		total := int64(len(text) + len(noise))
		if z && wb > int64(len(noise))+int64(len(text))/4 {
			t.Errorf("compressed pass moved %d bytes for %d bytes of files", wb, total)
		}
		if !z && wb < total {
			t.Errorf("uncompressed pass moved %d bytes for %d bytes of files", wb, total)
		}
	}
}

// File data crosses in pooled chunks that a frame owns until it is written
// (serving end) or read (receiving end). Many files of distinct content, of
// sizes around the chunk size, sent by every sender at once, must arrive
// byte for byte, compressed or not.
func TestChunkedFilesArriveWhole(t *testing.T) {
	src := t.TempDir()
	sizes := []int{0, 1, 511, 512, directWrite - 1, directWrite, wire.ChunkSize - 1, wire.ChunkSize, wire.ChunkSize + 1, 3*wire.ChunkSize + 17}
	files := map[string]string{}
	for i := range 40 {
		size := sizes[i%len(sizes)]
		b := make([]byte, size)
		x := uint32(i*2654435761 + 1)
		for j := range b {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b[j] = byte(x)
			if i%2 == 1 && j%64 != 0 {
				b[j] = 'a' + byte(i) // compressible
			}
		}
		files["d"+itoa(i%5)+"/f"+itoa(i)] = string(b)
	}
	writeTree(t, src, files)
	for _, z := range []bool{false, true} {
		a, b := net.Pipe()
		errc := make(chan error, 1)
		go func() { errc <- Serve(context.Background(), b, ServerConfig{Resolve: anyPath}) }()
		c, err := NewConn(a, Options{Name: "z:", Compress: z})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.OpenSource(context.Background(), src, "")
		if err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		res, err := engine.Run(context.Background(), engine.Options{Kind: engine.Initial, Src: "z:", Dst: dst, Source: s, StateDir: filepath.Join(t.TempDir(), "st")})
		if err != nil {
			t.Fatalf("compress %v: %v", z, err)
		}
		c.Close()
		<-errc
		if res.Stats.Failed != 0 || res.Stats.Files != int64(len(files)) {
			t.Fatalf("compress %v: stats %+v, want %d files and no failures", z, res.Stats, len(files))
		}
		for name, body := range files {
			got, err := os.ReadFile(filepath.Join(dst, name))
			if err != nil || string(got) != body {
				t.Fatalf("compress %v: %s arrived with %d bytes (%v), want %d", z, name, len(got), err, len(body))
			}
		}
	}
}
