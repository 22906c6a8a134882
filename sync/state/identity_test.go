package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/manifest"
)

func TestRemoteEnd(t *testing.T) {
	for _, c := range []struct {
		name string
		want End
	}{
		{"host:/srv/data/", End{Host: "host", Path: "/srv/data"}},
		{"user@host:/srv/data", End{Host: "host", Path: "/srv/data"}},
		{"alice@host:data", End{Host: "host", User: "alice", Path: "data"}},
		{"host:data", End{Host: "host", Path: "data"}},
		{"[::1]:dir", End{Host: "::1", Path: "dir"}},
		{"msync://h:7873/m/sub/", End{Host: "h", Port: 7873, Path: "msync:///m/sub"}},
		{"msync://h/m/sub", End{Host: "h", Port: 7873, Path: "msync:///m/sub"}},
		{"msync://h:9999/m/sub", End{Host: "h", Port: 9999, Path: "msync:///m/sub"}},
		{"rsync://u@h/mod/", End{Host: "h", Port: 873, Path: "rsync:///mod"}},
		{"rsync://[::1]:8873/mod", End{Host: "::1", Port: 8873, Path: "rsync:///mod"}},
		{"host:/", End{Host: "host", Path: "/"}},
	} {
		got := RemoteEnd(c.name)
		got.old = nil
		if got != c.want {
			t.Errorf("RemoteEnd(%q) = %+v, want %+v", c.name, got, c.want)
		}
	}
	// Ends that differ by a daemon's port or a relative path's user are
	// other trees; the default port written or not, and the user of an
	// absolute path, are not.
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"rsync://127.0.0.1:18731/m/", "rsync://127.0.0.1:18732/m/", false},
		{"msync://h/m/x", "msync://h:7873/m/x", true},
		{"rsync://h/m", "rsync://h:873/m/", true},
		{"alice@h:data", "bob@h:data", false},
		{"alice@h:data", "h:data", false},
		{"alice@h:/srv/data", "bob@h:/srv/data/", true},
	} {
		if got := RemoteEnd(c.a).same(RemoteEnd(c.b)); got != c.same {
			t.Errorf("%s and %s: same %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// A daemon's state directories: beneath its root, one per module, path
// and source, with safe names.
func TestModuleDir(t *testing.T) {
	root := "/var/lib/msync"
	seen := map[string]string{}
	for _, k := range [][3]string{
		{"m", "a/b", "s"}, {"m", "a_b", "s"}, {"m", "a", "b/s"}, {"m/a", "b", "s"}, {"n", "a/b", "s"},
		{"m", "", "s"}, {"m", "a/b", "t"}, {"..", "..", "s"}, {"m", "x/" + strings.Repeat("y", 300), "s"},
	} {
		d, err := ModuleDir(root, k[0], k[1], k[2])
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(d, root+"/")
		if !ok || strings.ContainsAny(name, "/\x00") || name == ".." || len(name) > 255 {
			t.Errorf("ModuleDir%q = %q: not one safe name beneath %s", k, d, root)
		}
		if o, dup := seen[d]; dup {
			t.Errorf("ModuleDir%q and %s share %s", k, o, d)
		}
		seen[d] = strings.Join(k[:], ",")
	}
	// One key, one directory, however the path is written.
	a, _ := ModuleDir(root, "m", "a/b", "s")
	b, _ := ModuleDir(root, "m", "/a/b/", "s")
	if a != b {
		t.Errorf("%s != %s", a, b)
	}
}

// Bind refuses the manifests of another pair and adopts those that
// record none; the manifests written after Bind record the pair.
func TestBind(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pa := Pair{Src: End{Host: "h", Path: "/a", FS: "fsid:1", Root: 2}, Dst: End{Host: "h", Path: "/b", FS: "fsid:1", Root: 3}}
	if err := d.Bind(pa); err != nil || d.Adopt() {
		t.Fatalf("empty state: %v, adopt %v", err, d.Adopt())
	}
	writeManifest := func(side Side) {
		f, err := os.Create(d.ManifestPath(side))
		if err != nil {
			t.Fatal(err)
		}
		w, err := d.NewWriter(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	writeManifest(Dest)
	if err := d.Bind(pa); err != nil {
		t.Fatalf("own pair: %v", err)
	}
	for _, pb := range []Pair{
		{Src: End{Host: "h", Path: "/other", FS: "fsid:1", Root: 2}, Dst: pa.Dst},
		{Src: pa.Src, Dst: End{Host: "h2", Path: "/b", FS: "fsid:1", Root: 3}},
		{Src: pa.Src, Dst: End{Host: "h", Path: "/b", FS: "fsid:9", Root: 3}},
		{Src: pa.Src, Dst: End{Host: "h", Path: "/b", FS: "fsid:9", Root: 4}},
	} {
		err := d.Bind(pb)
		var fe *ForeignError
		if !errors.Is(err, ErrForeign) || !errors.As(err, &fe) || fe.File != filepath.Join(dir, "dst.manifest") ||
			!strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "--state") {
			t.Errorf("Bind(%v) over %v: %v", pb, pa, err)
		}
	}
	// The destination removed since, or removed and made again (another
	// root inode on the same file system), is told apart from another
	// pair's: nothing recorded holds there, but an initial pass can start
	// over (Reset).
	for _, dst := range []End{{Host: "h", Path: "/b"}, {Host: "h", Path: "/b", FS: "fsid:1", Root: 4}} {
		err := d.Bind(Pair{Src: pa.Src, Dst: dst})
		var re *RecreatedError
		if !errors.Is(err, ErrRecreated) || !errors.As(err, &re) || errors.Is(err, ErrForeign) {
			t.Errorf("Bind over a destination recreated as %v: %v", dst, err)
		}
	}
}

// A state directory whose destination was made again starts over: Reset
// removes whatever was recorded about the old directory, its manifests
// last; a dry run's removes nothing and reads as empty.
func TestReset(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	old := Pair{Src: End{Host: "h", Path: "/a", FS: "fsid:1", Root: 2}, Dst: End{Host: "h", Path: "/b", FS: "fsid:1", Root: 3}}
	if err := d.Bind(old); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{d.ManifestPath(Source), d.ManifestPath(Dest), d.PendingPath()} {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w, err := d.NewWriter(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	for _, name := range []string{"journal", "journal.interrupted.1", "pass-in-progress", "passes.jsonl", "temp-tag"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := Pair{Src: old.Src, Dst: End{Host: "h", Path: "/b", FS: "fsid:1", Root: 4}}
	if err := d.Bind(now); !errors.Is(err, ErrRecreated) {
		t.Fatalf("Bind: %v", err)
	}
	before, _ := os.ReadDir(dir)
	if err := d.Reset(true); err != nil {
		t.Fatal(err)
	}
	if err := d.Bind(now); err != nil {
		t.Fatalf("Bind after a dry run's Reset: %v", err)
	}
	if r, err := d.OpenManifest(Source); r != nil || err != nil || len(d.Journals()) > 0 || len(d.Unsettled()) > 0 || d.Interrupted() {
		t.Errorf("after a dry run's Reset the state does not read as empty")
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Errorf("a dry run's Reset removed files: %d before, %d after", len(before), len(after))
	}
	d.fresh = false
	if err := d.Reset(false); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadDir(dir)
	var names []string
	for _, e := range after {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "lock passes.jsonl temp-tag" {
		t.Errorf("after Reset the state directory holds %s, want lock passes.jsonl temp-tag", got)
	}
	if err := d.Bind(now); err != nil {
		t.Errorf("Bind after Reset: %v", err)
	}
}

// Manifests whose pair was recorded before it held remote ends' ports and
// users are accepted for the end they named then, and written again at
// the next commit (Adopt); a record with ports and users is not.
func TestBindVersion1(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	local := End{Host: "h", Path: "/b", FS: "fsid:1", Root: 3}
	record := func(p Pair) {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(d.ManifestPath(Source))
		if err != nil {
			t.Fatal(err)
		}
		w, err := manifest.NewStateWriterFor(f, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// As version 1 recorded "rsync://h:18731/m/" and "alice@h:data".
	record(Pair{Src: End{Host: "h", Path: "rsync:///m"}, Dst: local})
	if err := d.Bind(Pair{Src: RemoteEnd("rsync://h:18731/m/"), Dst: local}); err != nil || !d.Adopt() {
		t.Errorf("version 1 record of a daemon: %v, adopt %v", err, d.Adopt())
	}
	if err := d.Bind(Pair{Src: RemoteEnd("rsync://other:18731/m/"), Dst: local}); !errors.Is(err, ErrForeign) {
		t.Errorf("version 1 record of another host: %v", err)
	}
	record(Pair{Src: End{Host: "h", Path: "data"}, Dst: local})
	if err := d.Bind(Pair{Src: RemoteEnd("alice@h:data"), Dst: local}); err != nil || !d.Adopt() {
		t.Errorf("version 1 record of a relative ssh path: %v, adopt %v", err, d.Adopt())
	}
	// Version 2 records the port and the user: the other one is refused.
	record(Pair{V: identityVersion, Src: RemoteEnd("rsync://h:18731/m/"), Dst: local})
	if err := d.Bind(Pair{Src: RemoteEnd("rsync://h:18732/m/"), Dst: local}); !errors.Is(err, ErrForeign) {
		t.Errorf("another daemon port: %v", err)
	}
	if err := d.Bind(Pair{Src: RemoteEnd("rsync://h:18731/m"), Dst: local}); err != nil || d.Adopt() {
		t.Errorf("the same daemon: %v, adopt %v", err, d.Adopt())
	}
	record(Pair{V: identityVersion, Src: RemoteEnd("alice@h:data"), Dst: local})
	if err := d.Bind(Pair{Src: RemoteEnd("bob@h:data"), Dst: local}); !errors.Is(err, ErrForeign) {
		t.Errorf("another user's home: %v", err)
	}
}

// What a daemon's client is told about the daemon's state names no path
// of the daemon's host: not the state root, nor a directory above it.
func TestForClient(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "srv", "state")
	sd, err := ModuleDir(root, "m", "x", "h:/src")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "srv"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, oerr := Open(sd) // mkdir fails above the root: srv is a file
	if oerr == nil {
		t.Fatal("Open beneath a file succeeded")
	}
	if err := os.Remove(filepath.Join(base, "srv")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(sd)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, lerr := Open(sd)
	ferr := &ForeignError{Dir: sd, File: d.ManifestPath(Source), Recorded: Pair{Dst: End{Host: "h", Path: "m/x"}}, Current: Pair{Dst: End{Host: "h", Path: "m/y"}}}
	for _, err := range []error{oerr, lerr, ferr, fmt.Errorf("state: %w", &os.LinkError{Op: "rename", Old: d.PendingPath(), New: sd + "/x", Err: os.ErrExist})} {
		msg := ForClient(err, sd).Error()
		if strings.Contains(msg, base) {
			t.Errorf("%v\nis told the client as\n%s", err, msg)
		}
		t.Log(msg)
	}
	if !errors.Is(ForClient(lerr, sd), ErrLocked) || !errors.Is(ForClient(ferr, sd), ErrForeign) {
		t.Error("ForClient hides what the error is")
	}
}
