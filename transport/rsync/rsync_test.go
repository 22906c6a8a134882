package rsync

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/delta"
	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
)

// makeTree writes a small tree with the awkward cases: empty and large
// files, names with spaces, newlines and non-UTF-8 bytes, a symlink and a
// hard-linked pair.
func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string][]byte{
		"empty":              nil,
		"small.txt":          []byte("hello\n"),
		"dir/with space":     []byte("spaced"),
		"dir/new\nline":      []byte("newline"),
		"dir/bad\xff\xfeutf": []byte("latin1"),
		"big/blob":           bytes.Repeat([]byte("0123456789abcdef"), 300_000), // 4.8 MB, many tokens
		"-dash":              []byte("sorts before the root's dot"),
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("small.txt", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "small.txt"), filepath.Join(root, "dir/hard")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPullFromStockDaemon(t *testing.T) {
	for _, bin := range rsynctest.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			root := makeTree(t)
			port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "m", Path: root, ReadOnly: true})
			ctx := context.Background()
			var log bytes.Buffer
			c, err := Dial(ctx, Endpoint{Daemon: true, Host: "127.0.0.1", Port: port, Module: "m", Name: "rsync://m"}, Options{Log: &log})
			if err != nil {
				t.Fatal(err)
			}
			checkPull(t, c, root)
			if err := c.Close(); err != nil {
				t.Fatalf("close: %v\n%s", err, log.String())
			}
			if c.stats.Size == 0 {
				t.Errorf("the sender's totals did not arrive: %+v", c.stats)
			}
		})
	}
}

// checkPull scans c, compares every entry with the tree at root and fetches
// every regular file.
func checkPull(t *testing.T, c *Client, root string) {
	t.Helper()
	ctx := context.Background()
	sc, err := c.Scan(ctx, tree.ScanConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := tree.NewLocal(root).Scan(ctx, tree.ScanConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var files []*manifest.Entry
	for {
		g, gerr := sc.Next()
		w, werr := want.Next()
		if gerr == io.EOF && werr == io.EOF {
			break
		}
		if gerr != nil || werr != nil {
			t.Fatalf("scan: got %v, want %v", gerr, werr)
		}
		if g.Path != w.Path || g.Type != w.Type || g.Size != w.Size || g.Mode != w.Mode ||
			g.Mtime != w.Mtime/1e9*1e9 || g.LinkTarget != w.LinkTarget || g.UID != w.UID || (g.Type == manifest.TypeFile && g.Nlink != w.Nlink) {
			t.Errorf("entry %q: got %+v, want %+v", w.Path, g, w)
		}
		if g.Type == manifest.TypeFile {
			files = append(files, g)
		}
	}
	if len(sc.Problems()) > 0 {
		t.Errorf("problems: %v", sc.Problems())
	}
	// Ask for all of them at once, as the engine's workers do.
	replies := make([]tree.Reply, len(files))
	for i, e := range files {
		if replies[i], err = c.Fetch(ctx, &send.Request{Path: e.Path, Size: e.Size}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	for i, e := range files {
		go func() {
			defer func() { done <- struct{}{} }()
			var out bytes.Buffer
			n, _, aerr := delta.Apply(ctx, bytes.NewReader(nil), delta.NewOpReader(replies[i], 0), &out)
			res, _ := replies[i].Result()
			if aerr != nil || res.Status != send.OK {
				t.Errorf("%q: apply %v, result %+v", e.Path, aerr, res)
				return
			}
			data, _ := os.ReadFile(filepath.Join(root, e.Path))
			if n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
				t.Errorf("%q: got %d bytes, want %d", e.Path, n, len(data))
			}
		}()
	}
	for range files {
		<-done
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		".": "", "": "", "x": "x", "a/b": "a/b", "a/./b": "a/b", "a//b/": "a/b", "./a": "a", "a/": "a",
		"a..b": "a..b", "..a/.b": "..a/.b", "a/b/.": "a/b",
	} {
		if got, err := cleanName(in); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/etc/passwd", "../x", "a/../../b", "a/..", "..", "a/../b", "a\x00b"} {
		if _, err := cleanName(bad); err == nil || !strings.Contains(err.Error(), "rsync protocol error") {
			t.Errorf("cleanName(%q) = %v, want a protocol error", bad, err)
		}
	}
}

// The matcher finds the receiver's blocks wherever they moved, sends the
// rest as literals, and the result rebuilds the new file.
func TestMatcherRebuilds(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	old := make([]byte, 200_000)
	for i := range old {
		old[i] = byte(r.Uint32())
	}
	// New: an insertion near the start, a rewritten middle, a grown tail.
	nw := append(append([]byte("inserted"), old[:90_000]...), old[91_000:]...)
	copy(nw[150_000:], bytes.Repeat([]byte{0xff}, 500))
	nw = append(nw, []byte("appended mail\n")...)
	var sums bytes.Buffer
	enc := &encoder{w: bufio.NewWriter(&sums)}
	h, err := enc.writeSums(bytes.NewReader(old), int64(len(old)), 42)
	if err != nil {
		t.Fatal(err)
	}
	enc.w.Flush()
	d := &decoder{r: bufio.NewReader(&sums)}
	for range 4 {
		d.int32() // the head
	}
	table, err := readSums(d, h)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	var matched int
	m := &matcher{t: table, seed: 42, emit: func(lit []byte, block int32) error {
		out = append(out, lit...)
		if block >= 0 {
			off, l := h.blockAt(block)
			out = append(out, old[off:off+l]...)
			matched += int(l)
		}
		return nil
	}}
	for p := nw; len(p) > 0; p = p[min(len(p), 7777):] {
		if err := m.write(p[:min(len(p), 7777)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, nw) {
		t.Fatalf("rebuilt %d bytes, want %d", len(out), len(nw))
	}
	if matched < len(old)*9/10 {
		t.Errorf("matched %d of %d old bytes", matched, len(old))
	}
}
