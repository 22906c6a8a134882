package rsync

import (
	"bufio"
	"bytes"
	"reflect"
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
		l.add(e, i%2 == 0)
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
	if n := unsafe.Sizeof(listFile{}); n > 72 {
		t.Errorf("listFile is %d bytes, the README promises at most 72 per entry besides its names", n)
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
		l.add(e, false)
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
