package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRemoteEnd(t *testing.T) {
	for _, c := range []struct {
		name string
		want End
	}{
		{"host:/srv/data/", End{Host: "host", Path: "/srv/data"}},
		{"user@host:/srv/data", End{Host: "host", Path: "/srv/data"}},
		{"[::1]:dir", End{Host: "::1", Path: "dir"}},
		{"msync://h:7873/m/sub/", End{Host: "h", Path: "msync:///m/sub"}},
		{"msync://h:9999/m/sub", End{Host: "h", Path: "msync:///m/sub"}},
		{"rsync://h/mod/", End{Host: "h", Path: "rsync:///mod"}},
		{"host:/", End{Host: "host", Path: "/"}},
	} {
		if got := RemoteEnd(c.name); got != c.want {
			t.Errorf("RemoteEnd(%q) = %+v, want %+v", c.name, got, c.want)
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
		{Src: pa.Src, Dst: End{Host: "h", Path: "/b", FS: "fsid:1", Root: 4}},
	} {
		err := d.Bind(pb)
		var fe *ForeignError
		if !errors.Is(err, ErrForeign) || !errors.As(err, &fe) || fe.File != filepath.Join(dir, "dst.manifest") ||
			!strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "--state") {
			t.Errorf("Bind(%v) over %v: %v", pb, pa, err)
		}
	}
	// A destination not made yet is known by host and path only.
	if err := d.Bind(Pair{Src: pa.Src, Dst: End{Host: "h", Path: "/b"}}); err != nil {
		t.Errorf("destination without file system: %v", err)
	}
}
