package module

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	m, err := Parse("data=/srv/data,ro")
	if err != nil || m != (Module{Name: "data", Path: "/srv/data", ReadOnly: true}) {
		t.Fatalf("Parse = %+v, %v", m, err)
	}
	if m, err = Parse("x=rel"); err != nil || !filepath.IsAbs(m.Path) || m.ReadOnly {
		t.Fatalf("Parse relative = %+v, %v", m, err)
	}
	for _, bad := range []string{"", "=/x", "a=", "a/b=/x", "a b=/x", "nopath"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestLookupNames(t *testing.T) {
	mods := []Module{{Name: "a", Path: "/a"}, {Name: "b", Path: "/b"}}
	if m, ok := Lookup(mods, "b"); !ok || m.Path != "/b" {
		t.Fatalf("Lookup b = %+v, %v", m, ok)
	}
	if _, ok := Lookup(mods, "c"); ok {
		t.Fatal("Lookup c found a module")
	}
	if got := strings.Join(Names(mods), ","); got != "a,b" {
		t.Fatalf("Names = %q", got)
	}
}

func TestRel(t *testing.T) {
	m := Module{Name: "m", Path: "/srv/data/"}
	for p, want := range map[string]string{"/srv/data": ".", "/srv/data/x/y": "x/y", "/srv/data/./x": "x"} {
		if got, err := m.Rel(p); err != nil || got != want {
			t.Errorf("Rel(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	for _, p := range []string{"/srv", "/srv/database", "/srv/data/../x", "/"} {
		if got, err := m.Rel(p); err == nil {
			t.Errorf("Rel(%q) = %q, want an error", p, got)
		}
	}
}

func TestOpenNamesModuleNotHost(t *testing.T) {
	dir := t.TempDir()
	r, err := (Module{Name: "m", Path: dir}).Open()
	if err != nil {
		t.Fatal(err)
	}
	if r.Path != "m" {
		t.Errorf("root named %q, want the module's name", r.Path)
	}
	r.Close()
	_, err = (Module{Name: "gone", Path: filepath.Join(dir, "nope")}).Open()
	if err == nil || strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), `module "gone"`) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing module: %v", err)
	}
}

// OpenDir reaches a module's directory beneath its descriptor: it makes
// the directories a push names, and never follows a symlink out.
func TestOpenDirBeneath(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	m := Module{Name: "m", Path: dir}
	base, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	d, created, err := OpenDir(base, "a/b", true, 0o700)
	if err != nil || !created {
		t.Fatalf("create a/b: created %v, %v", created, err)
	}
	d.Close()
	if fi, err := os.Stat(filepath.Join(dir, "a/b")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("a/b: %v, %v", fi, err)
	}
	if d, created, err = OpenDir(base, "a/b", true, 0o700); err != nil || created {
		t.Fatalf("a/b again: created %v, %v", created, err)
	}
	d.Close()
	if _, _, err := OpenDir(base, "missing", false, 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing directory without create: %v", err)
	}
	for _, create := range []bool{false, true} {
		if d, _, err := OpenDir(base, "out/x", create, 0o755); err == nil {
			d.Close()
			t.Errorf("create %v: a path through a symlink out of the module was opened", create)
		}
		if d, _, err := OpenDir(base, "out", create, 0o755); err == nil {
			d.Close()
			t.Errorf("create %v: a symlink out of the module was opened", create)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) > 0 {
		t.Errorf("something was made outside the module: %v", ents)
	}
}
