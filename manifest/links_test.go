package manifest

import (
	"bytes"
	"io"
	"testing"
)

// linkedKinds are hard-linked objects of every kind but a directory, and
// one directory (which has links but is never a hard link).
func linkedKinds() []*Entry {
	return []*Entry{
		{Path: "a", Type: TypeDir, Mode: 0o755, Nlink: 3, Dev: 9, Inode: 10},
		{Path: "b", Type: TypeFile, Mode: 0o644, Nlink: 2, Dev: 9, Inode: 11},
		{Path: "c", Type: TypeSymlink, Mode: 0o777, Nlink: 2, Dev: 9, Inode: 12, LinkTarget: "t", Size: 1},
		{Path: "d", Type: TypeFifo, Mode: 0o640, Nlink: 2, Dev: 9, Inode: 13},
		{Path: "e", Type: TypeSocket, Mode: 0o640, Nlink: 2, Dev: 9, Inode: 14},
		{Path: "f", Type: TypeChar, Mode: 0o640, Nlink: 2, Dev: 9, Inode: 15, Rdev: 259},
		{Path: "g", Type: TypeSymlink, Mode: 0o777, Nlink: 1, Dev: 9, Inode: 16, LinkTarget: "t", Size: 1},
	}
}

func readAll(t *testing.T, b []byte) []*Entry {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []*Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
}

// A compact stream (what crosses to another host) keeps the device and
// inode of every hard-linked object but a directory, as rsync -H links
// them: without them the receiver cannot group a linked symlink or fifo.
func TestCompactKeepsLinksOfEveryKind(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewCompactWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range linkedKinds() {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, buf.Bytes())
	for i, want := range linkedKinds() {
		g := got[i]
		if linked := want.Type != TypeDir && want.Nlink > 1; linked != g.IsHardlinked() {
			t.Errorf("%s (%s): IsHardlinked %v, want %v", g.Path, g.Type, g.IsHardlinked(), linked)
		}
		if g.IsHardlinked() && (g.Dev != want.Dev || g.Inode != want.Inode) {
			t.Errorf("%s (%s): device and inode %d/%d, want %d/%d", g.Path, g.Type, g.Dev, g.Inode, want.Dev, want.Inode)
		}
		if !Equal(g, Compacted(want)) {
			t.Errorf("%s: read back %+v, want %+v", g.Path, g, Compacted(want))
		}
	}
}

// A compact stream of an older writer (no FlagLinks) stored device and
// inode for regular files only: it still reads, and its linked symlinks
// and specials, without an inode, are grouped with nothing.
func TestCompactWithoutFlagLinksReads(t *testing.T) {
	var buf bytes.Buffer
	w, err := newWriter(&buf, FlagZstd|FlagXXH64|FlagCompact)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range linkedKinds() {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.AllLinks() {
		t.Error("a compact stream without FlagLinks says it tells every link")
	}
	for _, g := range readAll(t, buf.Bytes()) {
		if g.IsHardlinked() != (g.Type == TypeFile) {
			t.Errorf("%s (%s): IsHardlinked %v", g.Path, g.Type, g.IsHardlinked())
		}
	}
}
