package rsync

import (
	"bufio"
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/send"
)

// pushListEntries is a source in manifest order whose bytewise wire order
// differs ("a/b" before "a.b" here, after it on the wire; "+x" before ".")
// with every kind of entry the list carries.
func pushListEntries() []*manifest.Entry {
	return []*manifest.Entry{
		{Path: "", Type: manifest.TypeDir, Mode: 0o755, Mtime: 1e9, UID: 1, GID: 2},
		{Path: " sp", Type: manifest.TypeFile, Mode: 0o600, Size: 5, Mtime: -1_500_000_000, Ctime: 7, Dev: 3, Inode: 41},
		{Path: "+x", Type: manifest.TypeFifo, Mode: 0o644, Mtime: 2e9},
		{Path: "a", Type: manifest.TypeDir, Mode: 0o700, Mtime: 3e9},
		{Path: "a/b", Type: manifest.TypeFile, Mode: 0o644, Size: 5 << 30, Mtime: 4e9 + 5, Ctime: 9, Dev: 3, Inode: 42, Nlink: 2, UID: 1000},
		{Path: "a/c", Type: manifest.TypeSymlink, Mode: 0o777, Size: 6, LinkTarget: "../a.b", Mtime: 5e9},
		{Path: "a/dev", Type: manifest.TypeChar, Mode: 0o600, Rdev: 0x0103, Mtime: 6e9},
		{Path: "a.b", Type: manifest.TypeFile, Mode: 0o4755, Size: 1, Mtime: 7e9, Dev: 3, Inode: 42, Nlink: 2, Xattrs: []manifest.Xattr{{Name: "user.x", Value: []byte("v")}}, Hash: 9, HasHash: true},
		{Path: "z", Type: manifest.TypeSocket, Mode: 0o755, Mtime: 8e9},
	}
}

// The compact list sends the bytes the list of whole entries sends, in
// the same order, and the receiver's index finds the file the sender
// would read (send.RequestFor).
func TestPushListSendsAsSendList(t *testing.T) {
	entries := pushListEntries()
	l := &pushList{}
	for i, e := range entries {
		if err := l.add(e, i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	l.sort()
	want := sendList(entries, "")
	encode := func(files sendable) []byte {
		var b bytes.Buffer
		e := &encoder{w: bufio.NewWriter(&b)}
		if err := e.writeFileList(files, 0); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if got, w := encode(l), encode(want); !bytes.Equal(got, w) {
		t.Fatalf("file list differs:\n got %q\nwant %q", got, w)
	}
	if l.len() != len(want) {
		t.Fatalf("len %d, want %d", l.len(), len(want))
	}
	for ndx := range want {
		wire, e := l.at(ndx)
		if ww, we := want.at(ndx); wire != ww || e.Path != we.Path || e.Type != we.Type || e.LinkTarget != we.LinkTarget || e.Rdev != we.Rdev {
			t.Errorf("index %d: %q %+v, want %q %+v", ndx, wire, e, ww, we)
		}
		if e.Type == manifest.TypeFile && !reflect.DeepEqual(send.RequestFor(e), send.RequestFor(want[ndx].e)) {
			t.Errorf("index %d: request %+v, want %+v", ndx, send.RequestFor(e), send.RequestFor(want[ndx].e))
		}
		if created := l.file(int32(ndx)).created; created != (indexOf(entries, e.Path)%2 == 0) {
			t.Errorf("%q: created %v", e.Path, created)
		}
	}
	if n := unsafe.Sizeof(listFile{}); n > 64 {
		t.Errorf("listFile is %d bytes, want at most 64", n)
	}
}

func indexOf(es []*manifest.Entry, path string) int {
	for i, e := range es {
		if e.Path == path {
			return i
		}
	}
	return -1
}

// The final re-check reports what a re-scan has that differs from the
// list sent, appeared and vanished paths included, in manifest order.
func TestPushListMoved(t *testing.T) {
	sent := pushListEntries()
	l := &pushList{}
	for _, e := range sent {
		if err := l.add(e, false); err != nil {
			t.Fatal(err)
		}
	}
	l.sort()
	clone := func(mod func(map[string]*manifest.Entry)) []*manifest.Entry {
		m := map[string]*manifest.Entry{}
		for _, e := range sent {
			c := *e
			m[e.Path] = &c
		}
		mod(m)
		var out []*manifest.Entry
		for _, e := range sent {
			if c := m[e.Path]; c != nil {
				out = append(out, c)
			}
			if e.Path == "a/c" && m["a/ca"] != nil {
				out = append(out, m["a/ca"])
			}
		}
		if m["zz"] != nil {
			out = append(out, m["zz"])
		}
		return out
	}
	for _, tt := range []struct {
		name string
		mod  func(map[string]*manifest.Entry)
		want string
	}{
		{"quiet", func(map[string]*manifest.Entry) {}, ""},
		{"ctime, owner, xattrs, hash: not judged", func(m map[string]*manifest.Entry) {
			m["a/b"].Ctime, m["a/b"].UID, m["a.b"].Xattrs, m["a.b"].HasHash = 99, 5, nil, false
		}, ""},
		{"size", func(m map[string]*manifest.Entry) { m["a/b"].Size++ }, "a/b"},
		{"mtime", func(m map[string]*manifest.Entry) { m[" sp"].Mtime++ }, " sp"},
		{"mode", func(m map[string]*manifest.Entry) { m["a.b"].Mode = 0o755 }, "a.b"},
		{"symlink target", func(m map[string]*manifest.Entry) { m["a/c"].LinkTarget = "x" }, "a/c"},
		{"type", func(m map[string]*manifest.Entry) { m["z"].Type = manifest.TypeFifo }, "z"},
		{"appeared and vanished", func(m map[string]*manifest.Entry) {
			delete(m, "+x")
			delete(m, "a/dev")
			m["a/ca"] = &manifest.Entry{Path: "a/ca", Type: manifest.TypeFile}
			m["zz"] = &manifest.Entry{Path: "zz", Type: manifest.TypeFile}
		}, "+x,a/ca,a/dev,zz"},
		{"all vanished", func(m map[string]*manifest.Entry) { clear(m) }, ", sp,+x,a,a/b,a/c,a/dev,a.b,z"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.moved(&manifest.SliceIterator{Entries: clone(tt.mod)})
			if err != nil {
				t.Fatal(err)
			}
			if g := strings.Join(got, ","); g != tt.want {
				t.Errorf("moved %q, want %q", g, tt.want)
			}
		})
	}
}

// A list over many chunks of entries and names sends what the list of
// whole entries sends; a name longer than rsync's limit is refused.
func TestPushListChunks(t *testing.T) {
	entries := []*manifest.Entry{{Path: "", Type: manifest.TypeDir, Mode: 0o755}}
	for d := range 30 {
		dir := fmt.Sprintf("dir%02d", d)
		entries = append(entries, &manifest.Entry{Path: dir, Type: manifest.TypeDir, Mode: 0o755})
		for f := range 300 {
			entries = append(entries,
				&manifest.Entry{Path: fmt.Sprintf("%s/%s-%04d.eml", dir, strings.Repeat("m", f%97), f), Type: manifest.TypeFile, Size: int64(f), Mtime: int64(d) * 1e9, Inode: uint64(d*1000 + f)},
				&manifest.Entry{Path: fmt.Sprintf("%s/l%04d", dir, f), Type: manifest.TypeSymlink, LinkTarget: strings.Repeat("t", f)})
		}
		entries = append(entries, &manifest.Entry{Path: dir + ".bak", Type: manifest.TypeFile, Size: 1})
	}
	slices.SortFunc(entries, func(a, b *manifest.Entry) int { return manifest.Compare(a.Path, b.Path) })
	l := &pushList{}
	for _, e := range entries {
		if err := l.add(e, false); err != nil {
			t.Fatal(err)
		}
	}
	l.sort()
	if len(l.files) < 3 || len(l.names) < 3 {
		t.Fatalf("%d entries in %d chunks, names in %d: want several of each", l.n, len(l.files), len(l.names))
	}
	var got, want bytes.Buffer
	for b, files := range map[*bytes.Buffer]sendable{&got: l, &want: sendList(entries, "")} {
		e := &encoder{w: bufio.NewWriter(b)}
		if err := e.writeFileList(files, 0); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("the file lists differ (%d and %d bytes)", got.Len(), want.Len())
	}
	long := &manifest.Entry{Path: "zz", Type: manifest.TypeSymlink, LinkTarget: strings.Repeat("x", maxPath+1)}
	if err := l.add(long, false); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a symlink target over %d bytes: %v", maxPath, err)
	}
}
