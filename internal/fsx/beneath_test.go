package fsx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// OpenDir and MkdirAll reach only directories beneath the root, never
// through a symlink, and name what they refuse by the root's name; with
// openat2 and with the walk that stands in for it on older kernels.
func TestOpenDirBeneath(t *testing.T) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			if walk {
				noOpenat2.Store(true)
				defer noOpenat2.Store(false)
			}
			base := t.TempDir()
			mod, outside := filepath.Join(base, "mod"), filepath.Join(base, "outside")
			for _, d := range []string{mod + "/a/b", outside + "/x"} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(mod+"/file", nil, 0o644)
			os.Symlink(outside, mod+"/link")
			os.Symlink("b", mod+"/a/rel")
			r, err := OpenRootAs(mod, "m")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.HostPath() {
				t.Error("a root opened under a name claims a host path")
			}
			d, err := r.OpenDir("a/b")
			if err != nil {
				t.Fatal(err)
			}
			var st, want unix.Stat_t
			unix.Fstat(d.Fd(), &st)
			unix.Stat(mod+"/a/b", &want)
			if st.Ino != want.Ino || d.Path != "m/a/b" {
				t.Errorf("a/b opened %d as %q, want %d as m/a/b", st.Ino, d.Path, want.Ino)
			}
			d.Close()
			for _, bad := range []string{"link", "link/x", "a/rel", "file", "file/x", "../outside", "a/../../outside", "/etc", "missing"} {
				d, err := r.OpenDir(bad)
				if err == nil {
					d.Close()
					t.Errorf("%q opened", bad)
					continue
				}
				if strings.Contains(err.Error(), base) || !strings.Contains(err.Error(), "m/") {
					t.Errorf("%q: %v, want a message naming m/, not the host path", bad, err)
				}
			}
			if created, err := r.MkdirAll("a/new/deeper", 0o755); err != nil || !created {
				t.Errorf("MkdirAll a/new/deeper: %v, %v", created, err)
			}
			if created, err := r.MkdirAll("a/new/deeper", 0o755); err != nil || created {
				t.Errorf("MkdirAll of an existing directory: %v, %v", created, err)
			}
			for _, bad := range []string{"link/y", "a/rel/y", "file/y", "link"} {
				if _, err := r.MkdirAll(bad, 0o755); err == nil {
					t.Errorf("MkdirAll %q through a symlink or a file succeeded", bad)
				}
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 1 {
				t.Errorf("something was created outside the root: %v", ents)
			}
			if _, err := os.Stat(mod + "/a/b/y"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("MkdirAll followed a/rel: %v", err)
			}
		})
	}
}

// Within judges by identity: a path through a symlink into a directory is
// within it, a sibling or an ancestor is not.
func TestWithin(t *testing.T) {
	base := t.TempDir()
	if err := os.MkdirAll(base+"/a/b/c", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(base+"/x", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base+"/a/b", base+"/x/l"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir, anc string
		want     bool
	}{
		{base + "/a", base + "/a", true}, {base + "/a/b/c", base + "/a", true}, {base + "/x/l/c", base + "/a", true},
		{base + "/x/l", base + "/a/b", true}, {base + "/a", base + "/a/b", false}, {base + "/x", base + "/a", false},
		{base + "/missing", base, false}, {base + "/a", base + "/missing", false},
	} {
		if got := Within(tc.dir, tc.anc); got != tc.want {
			t.Errorf("Within(%s, %s) = %v, want %v", tc.dir, tc.anc, got, tc.want)
		}
	}
}
