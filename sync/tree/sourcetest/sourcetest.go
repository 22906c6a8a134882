// Package sourcetest is the conformance suite every source of a pass
// (engine.Source) runs: the local tree (tree.Local), msync's remote source
// over a connection (transport/remote) and the client of a stock rsync
// sender (transport/rsync). Like restic's backend test suite and
// testing/fstest, it writes trees with every kind of object, then checks
// what the engine relies on:
//
//   - the scan comes in manifest order (manifest.Compare), every object
//     once, with its metadata;
//   - Fetch returns a file's exact content, whole or as a delta against a
//     basis the receiver holds, or (for a source that takes msync's
//     signatures) as the tail after a proven prefix, refusing a prefix
//     that changed;
//   - a file changed between the scan and the fetch is never delivered as
//     if it were what the scan saw: the reply says Changed, or carries the
//     file as it is now (Result.Fresh), or its length differs from the
//     scan's (the checks the engine's worker makes on a reply);
//   - a file that cannot be read, or vanished, fails that request with an
//     error naming it, and the next request still works;
//   - closing the source ends its goroutines, and a fetch after it fails
//     cleanly rather than hangs.
//
// Where a source legitimately differs (stock rsync sends mtimes in whole
// seconds below protocol 31 and cannot see a same-size rewrite), the
// caller says so in Caps; the suite then checks the weaker promise rather
// than skipping.
package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/delta"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
	"golang.org/x/sys/unix"
)

// Source is what the suite tests: the methods of engine.Source (declared
// here so that the suite does not depend on the engine).
type Source interface {
	String() string
	Join(rel string) string
	Scan(ctx context.Context, c tree.ScanConfig) (tree.Scan, error)
	Fetch(ctx context.Context, req *send.Request) (tree.Reply, error)
}

// Opener opens the tree at dir as a source. close releases it (and
// whatever the opener started: a connection, a peer process); the suite
// calls it exactly once.
type Opener func(t *testing.T, dir string) (src Source, close func())

// Caps declares where a source legitimately differs from the local tree.
type Caps struct {
	// MtimeSeconds: entries carry mtimes in whole seconds.
	MtimeSeconds bool
	// SizeOnlyChangeCheck: the source cannot tell a file rewritten
	// between scan and fetch at the same size; it must then deliver the
	// file whole as it is at fetch time.
	SizeOnlyChangeCheck bool
	// ReusableAfterClose: close only releases caches; a later fetch may
	// succeed (it must then be exact).
	ReusableAfterClose bool
	// OneScan: the source scans once per connection (rsync's file list).
	// The suite never scans a source twice whatever this says; it is
	// recorded for the reader.
	OneScan bool
}

// basisSigner is a source that wants the receiver's old copy
// (send.Request.Basis) rather than msync's signature of it, as the engine
// asks send.BasisSigner.
type basisSigner interface{ SignsBasis() bool }

// opLister is a reply that hands its operations over in memory, as the
// engine's worker asks of a reply.
type opLister interface {
	Ops(basisSize int64) delta.Ops
}

// Run runs the suite against the sources open returns.
func Run(t *testing.T, caps Caps, open Opener) {
	t.Run("ScanOrderAndMetadata", func(t *testing.T) { testScan(t, caps, open) })
	t.Run("FetchExact", func(t *testing.T) { testFetch(t, open) })
	t.Run("FetchDelta", func(t *testing.T) { testDelta(t, open) })
	t.Run("FetchAppend", func(t *testing.T) { testAppend(t, open) })
	t.Run("ChangedBetweenScanAndFetch", func(t *testing.T) { testChanged(t, caps, open) })
	t.Run("FailuresNameThePathAndDoNotBreakTheNext", func(t *testing.T) { testFailures(t, open) })
	t.Run("Close", func(t *testing.T) { testClose(t, caps, open) })
}

// ctx bounds every call of the suite: a source that hangs fails.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func write(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// everyKind writes a tree with every kind of object a scan reports:
// directories (empty and nested), regular files (empty, small, large,
// awkward names), a symlink, a dangling symlink, a hard-linked pair, a
// FIFO, and as root a character device; odd modes and an old mtime.
func everyKind(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write(t, dir, map[string][]byte{
		"empty":             nil,
		"small.txt":         []byte("hello\n"),
		"-dash":             []byte("sorts before the root's dot"),
		"a/b/c/deep":        []byte("deep"),
		"a.b":               []byte("dot sorts after a/"),
		"a b/with space":    []byte("spaced"),
		"names/new\nline":   []byte("newline"),
		"names/bad\xffutf8": []byte("latin1"),
		"big/blob":          random(1, 1<<20+12345),
		"hard/one":          []byte("linked"),
	})
	must(t, os.Mkdir(filepath.Join(dir, "emptydir"), 0o700))
	must(t, os.Symlink("small.txt", filepath.Join(dir, "link")))
	must(t, os.Symlink("../nowhere/at all", filepath.Join(dir, "names/dangling")))
	must(t, os.Link(filepath.Join(dir, "hard/one"), filepath.Join(dir, "hard/two")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	}
	must(t, os.Chmod(filepath.Join(dir, "small.txt"), 0o4751))
	old := time.Date(2001, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "a.b"), old, old))
	must(t, os.Chtimes(filepath.Join(dir, "a/b"), old, old))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// scanAll reads a whole scan of src.
func scanAll(t *testing.T, src Source) []*manifest.Entry {
	t.Helper()
	sc, err := src.Scan(ctx(t), tree.ScanConfig{})
	if err != nil {
		t.Fatalf("scan %s: %v", src, err)
	}
	defer sc.Close()
	var out []*manifest.Entry
	for {
		e, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("scan %s: %v", src, err)
		}
		out = append(out, e)
	}
	if p := sc.Problems(); len(p) > 0 {
		t.Errorf("scan %s: problems %v", src, p)
	}
	return out
}

func typeOf(mode uint32) manifest.Type {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return manifest.TypeFile
	case unix.S_IFDIR:
		return manifest.TypeDir
	case unix.S_IFLNK:
		return manifest.TypeSymlink
	case unix.S_IFIFO:
		return manifest.TypeFifo
	case unix.S_IFCHR:
		return manifest.TypeChar
	case unix.S_IFBLK:
		return manifest.TypeBlock
	case unix.S_IFSOCK:
		return manifest.TypeSocket
	}
	return 0
}

func testScan(t *testing.T, caps Caps, open Opener) {
	dir := everyKind(t)
	src, closeSrc := open(t, dir)
	defer closeSrc()
	got := scanAll(t, src)
	want := map[string]bool{}
	must(t, filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			want[filepath.ToSlash(rel)] = true
		}
		return nil
	}))
	seen := map[string]bool{}
	for i, e := range got {
		if i > 0 && manifest.Compare(got[i-1].Path, e.Path) >= 0 {
			t.Errorf("scan order: %q came after %q", e.Path, got[i-1].Path)
		}
		if e.Path == "" {
			if e.Type != manifest.TypeDir {
				t.Errorf("root entry of type %v", e.Type)
			}
			continue
		}
		if !want[e.Path] {
			t.Errorf("scan reported %q, which is not in the tree", e.Path)
			continue
		}
		seen[e.Path] = true
		checkEntry(t, caps, dir, e)
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("scan missed %q", p)
		}
	}
}

// checkEntry compares e with what lstat says of it.
func checkEntry(t *testing.T, caps Caps, dir string, e *manifest.Entry) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, e.Path), &st); err != nil {
		t.Errorf("%q: %v", e.Path, err)
		return
	}
	mtime := st.Mtim.Nano()
	if caps.MtimeSeconds {
		mtime = st.Mtim.Sec * 1e9
	}
	typ := typeOf(st.Mode)
	var bad []string
	if e.Type != typ {
		bad = append(bad, fmt.Sprintf("type %v, want %v", e.Type, typ))
	}
	if typ != manifest.TypeSymlink && e.Mode&0o7777 != st.Mode&0o7777 {
		bad = append(bad, fmt.Sprintf("mode %04o, want %04o", e.Mode&0o7777, st.Mode&0o7777))
	}
	if e.UID != st.Uid || e.GID != st.Gid {
		bad = append(bad, fmt.Sprintf("owner %d:%d, want %d:%d", e.UID, e.GID, st.Uid, st.Gid))
	}
	if typ != manifest.TypeDir && e.Mtime != mtime {
		bad = append(bad, fmt.Sprintf("mtime %d, want %d", e.Mtime, mtime))
	}
	switch typ {
	case manifest.TypeFile:
		if e.Size != st.Size {
			bad = append(bad, fmt.Sprintf("size %d, want %d", e.Size, st.Size))
		}
		if e.Nlink != uint32(st.Nlink) {
			bad = append(bad, fmt.Sprintf("nlink %d, want %d", e.Nlink, st.Nlink))
		}
	case manifest.TypeSymlink:
		target, _ := os.Readlink(filepath.Join(dir, e.Path))
		if e.LinkTarget != target {
			bad = append(bad, fmt.Sprintf("target %q, want %q", e.LinkTarget, target))
		}
	case manifest.TypeChar, manifest.TypeBlock:
		if e.Rdev != st.Rdev {
			bad = append(bad, fmt.Sprintf("rdev %#x, want %#x", e.Rdev, st.Rdev))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%q: %s", e.Path, strings.Join(bad, "; "))
	}
}

// fetched is one reply read to its end.
type fetched struct {
	data   []byte
	n      int64
	res    *send.Result
	err    error // Fetch's, Apply's or Result's error
	copies int64 // bytes copied from the basis
}

// fetch asks src for req and rebuilds the file on basis (nil: none).
func fetch(t *testing.T, src Source, req *send.Request, basis []byte) fetched {
	t.Helper()
	reply, err := src.Fetch(ctx(t), req)
	if err != nil {
		return fetched{err: err}
	}
	return read(t, reply, basis)
}

// read rebuilds a reply's file on basis, as the engine's worker does.
func read(t *testing.T, reply tree.Reply, basis []byte) fetched {
	t.Helper()
	var ops delta.Ops
	if l, ok := reply.(opLister); ok {
		ops = l.Ops(int64(len(basis)))
	} else {
		ops = delta.NewOpReader(reply, int64(len(basis)))
	}
	c := &copyCounter{ops: ops}
	var out bytes.Buffer
	n, _, aerr := delta.Apply(ctx(t), bytes.NewReader(basis), c, &out)
	res, rerr := reply.Result()
	f := fetched{data: out.Bytes(), n: n, res: res, copies: c.copied}
	switch {
	case rerr != nil:
		f.err = rerr
	case res == nil:
		f.err = errors.New("no result")
	case res.Status == send.Failed:
		f.err = res.Err
		if f.err == nil {
			f.err = errors.New("failed without a cause")
		}
	case res.Status == send.OK && aerr != nil:
		f.err = aerr
	}
	return f
}

type copyCounter struct {
	ops    delta.Ops
	copied int64
}

func (c *copyCounter) Next() (delta.Op, error) {
	op, err := c.ops.Next()
	if err == nil && op.Kind == delta.OpCopy {
		c.copied += op.Length
	}
	return op, err
}

// files returns the scan's regular files by path.
func files(es []*manifest.Entry) map[string]*manifest.Entry {
	m := map[string]*manifest.Entry{}
	for _, e := range es {
		if e.Type == manifest.TypeFile {
			m[e.Path] = e
		}
	}
	return m
}

func testFetch(t *testing.T, open Opener) {
	dir := everyKind(t)
	src, closeSrc := open(t, dir)
	defer closeSrc()
	fs := files(scanAll(t, src))
	paths := make([]string, 0, len(fs))
	for p := range fs {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, manifest.Compare)
	// Ask for them all before reading any, as the engine does.
	replies := make([]tree.Reply, len(paths))
	for i, p := range paths {
		r, err := src.Fetch(ctx(t), send.RequestFor(fs[p]))
		if err != nil {
			t.Fatalf("fetch %q: %v", p, err)
		}
		replies[i] = r
	}
	for i, p := range paths {
		f := read(t, replies[i], nil)
		want, _ := os.ReadFile(filepath.Join(dir, p))
		if f.err != nil || f.res.Status != send.OK {
			t.Errorf("%q: status %v, error %v", p, f.res, f.err)
			continue
		}
		if !bytes.Equal(f.data, want) || f.n != int64(len(want)) {
			t.Errorf("%q: got %d bytes, want %d exactly", p, f.n, len(want))
		}
	}
}

func testDelta(t *testing.T, open Opener) {
	dir := t.TempDir()
	old := random(2, 3<<20)
	// The new file: a block rewritten, bytes inserted and the tail cut.
	cur := slices.Clone(old[:1<<20])
	copy(cur[4096:], random(3, 5000))
	cur = append(cur, []byte("inserted in the middle")...)
	cur = append(cur, old[1<<20:3<<20-70_000]...)
	write(t, dir, map[string][]byte{"f": cur})
	src, closeSrc := open(t, dir)
	defer closeSrc()
	e := files(scanAll(t, src))["f"]
	if e == nil {
		t.Fatal("scan has no f")
	}
	req := send.RequestFor(e)
	req.Mode, req.BasisSize = send.Delta, int64(len(old))
	if b, ok := src.(basisSigner); ok && b.SignsBasis() {
		req.Basis = bytes.NewReader(old)
	} else {
		sig, _, err := delta.Sign(ctx(t), bytes.NewReader(old), int64(len(old)), 0)
		must(t, err)
		req.Sig = sig
	}
	f := fetch(t, src, req, old)
	if f.err != nil || f.res.Status != send.OK {
		t.Fatalf("delta fetch: status %v, error %v", f.res, f.err)
	}
	if !bytes.Equal(f.data, cur) {
		t.Fatalf("delta fetch rebuilt %d bytes, not the %d of the file", len(f.data), len(cur))
	}
	if f.copies < int64(len(cur))/2 {
		t.Errorf("delta fetch copied only %d of %d bytes from the basis: not a delta", f.copies, len(cur))
	}
}

// testAppend asks for a grown file as its tail after the receiver's old
// copy, as the engine does for an mbox, and then with an old copy that is
// not the file's prefix. The engine asks this only of a source that takes
// msync's signatures: a basis signer (stock rsync) is asked for a delta.
func testAppend(t *testing.T, open Opener) {
	dir := t.TempDir()
	old := random(4, 200_000)
	cur := append(slices.Clone(old), random(5, 30_000)...)
	write(t, dir, map[string][]byte{"mbox": cur})
	src, closeSrc := open(t, dir)
	defer closeSrc()
	e := files(scanAll(t, src))["mbox"]
	if e == nil {
		t.Fatal("scan has no mbox")
	}
	if b, ok := src.(basisSigner); ok && b.SignsBasis() {
		return // the engine asks a delta of it (FetchDelta)
	}
	req := send.RequestFor(e)
	req.Mode, req.BasisSize, req.BasisHash = send.Append, int64(len(old)), xxhash.Sum64(old)
	f := fetch(t, src, req, old)
	if f.err != nil || f.res.Status != send.OK || !bytes.Equal(f.data, cur) {
		t.Fatalf("append: %d bytes, status %v, error %v", len(f.data), f.res, f.err)
	}
	if f.copies != int64(len(old)) {
		t.Errorf("append copied %d bytes of the old copy, want its %d", f.copies, len(old))
	}
	other := slices.Clone(old)
	other[100] ^= 1
	req = send.RequestFor(e)
	req.Mode, req.BasisSize, req.BasisHash = send.Append, int64(len(other)), xxhash.Sum64(other)
	if f := fetch(t, src, req, other); f.err != nil || f.res.Status != send.PrefixChanged {
		t.Errorf("append on a changed prefix: status %v, error %v; want PrefixChanged", f.res, f.err)
	}
}

func testChanged(t *testing.T, caps Caps, open Opener) {
	dir := t.TempDir()
	write(t, dir, map[string][]byte{"grows": []byte("before"), "rewritten": []byte("AAAA"), "next": []byte("next")})
	old := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(filepath.Join(dir, "rewritten"), old, old))
	src, closeSrc := open(t, dir)
	defer closeSrc()
	fs := files(scanAll(t, src))
	// Grown after the scan.
	f, err := os.OpenFile(filepath.Join(dir, "grows"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString(" and after the scan")
	must(t, errors.Join(err, f.Close()))
	// Rewritten at the same size, with a new mtime.
	must(t, os.WriteFile(filepath.Join(dir, "rewritten"), []byte("BBBB"), 0o644))
	for _, p := range []string{"grows", "rewritten"} {
		e := fs[p]
		if e == nil {
			t.Fatalf("scan has no %q", p)
		}
		g := fetch(t, src, send.RequestFor(e), nil)
		now, _ := os.ReadFile(filepath.Join(dir, p))
		seen := g.err == nil && (g.res.Status == send.Changed || g.res.Fresh != nil || g.n != e.Size)
		switch {
		case seen:
		case g.err != nil:
			t.Errorf("%q changed after the scan: the fetch failed (%v) rather than reporting the change", p, g.err)
		case p == "rewritten" && caps.SizeOnlyChangeCheck:
			// The weaker promise: the file as it is now, whole.
			if !bytes.Equal(g.data, now) {
				t.Errorf("%q rewritten after the scan: got %q, want %q", p, g.data, now)
			}
		default:
			t.Errorf("%q changed after the scan, yet the reply (status %v, %d bytes) looks like what the scan saw", p, g.res.Status, g.n)
		}
		if g.err == nil && g.res.Status == send.OK && !bytes.Equal(g.data, now) {
			t.Errorf("%q: an OK reply of %d bytes is not the file as it is (%d bytes)", p, len(g.data), len(now))
		}
	}
	g := fetch(t, src, send.RequestFor(fs["next"]), nil)
	if g.err != nil || g.res.Status != send.OK || string(g.data) != "next" {
		t.Errorf("the request after the changed files: %q, status %v, error %v", g.data, g.res, g.err)
	}
}

// unreadable makes the file at p one its source cannot read. Permissions
// do not bind root, so there it becomes a symlink to nowhere, which a
// source must not follow nor find.
func unreadable(t *testing.T, p string) {
	t.Helper()
	if os.Geteuid() != 0 {
		must(t, os.Chmod(p, 0))
		t.Cleanup(func() { os.Chmod(p, 0o644) })
		return
	}
	must(t, os.Remove(p))
	must(t, os.Symlink("no-such-target", p))
}

func testFailures(t *testing.T, open Opener) {
	dir := t.TempDir()
	write(t, dir, map[string][]byte{"a-first": []byte("first"), "b-unreadable": []byte("secret"),
		"c-vanishes": []byte("gone soon"), "d-last": []byte("last")})
	src, closeSrc := open(t, dir)
	defer closeSrc()
	fs := files(scanAll(t, src))
	unreadable(t, filepath.Join(dir, "b-unreadable"))
	must(t, os.Remove(filepath.Join(dir, "c-vanishes")))
	for _, c := range []struct{ bad, next string }{{"b-unreadable", "d-last"}, {"c-vanishes", "a-first"}} {
		g := fetch(t, src, send.RequestFor(fs[c.bad]), nil)
		switch {
		case g.err == nil && g.res.Status == send.OK:
			t.Errorf("%q: fetched %q, want a failure", c.bad, g.data)
		case g.err == nil:
			t.Errorf("%q: status %v without an error", c.bad, g.res.Status)
		case !strings.Contains(g.err.Error(), c.bad):
			t.Errorf("%q: the error %q does not name the file", c.bad, g.err)
		}
		want, _ := os.ReadFile(filepath.Join(dir, c.next))
		n := fetch(t, src, send.RequestFor(fs[c.next]), nil)
		if n.err != nil || n.res.Status != send.OK || !bytes.Equal(n.data, want) {
			t.Errorf("%q after the failed %q: %q, status %v, error %v", c.next, c.bad, n.data, n.res, n.err)
		}
	}
}

func testClose(t *testing.T, caps Caps, open Opener) {
	dir := t.TempDir()
	write(t, dir, map[string][]byte{"f": []byte("content"), "g": []byte("more")})
	before := runtime.NumGoroutine()
	src, closeSrc := open(t, dir)
	fs := files(scanAll(t, src))
	if g := fetch(t, src, send.RequestFor(fs["f"]), nil); g.err != nil || string(g.data) != "content" {
		t.Fatalf("fetch before close: %q, %v", g.data, g.err)
	}
	closeSrc()
	done := make(chan fetched, 1)
	go func() { done <- fetch(t, src, send.RequestFor(fs["g"]), nil) }()
	select {
	case g := <-done:
		switch {
		case g.err != nil:
		case caps.ReusableAfterClose && g.res.Status == send.OK && string(g.data) == "more":
		default:
			t.Errorf("fetch after close: %q, status %v, no error", g.data, g.res.Status)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fetch after close hangs")
	}
	// Everything the source started ends.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines after close, %d before open:\n%s", n, before, buf)
	}
}
