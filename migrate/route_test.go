package migrate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/msync/msync/sync/state"
)

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		src, dst string
		rsync    bool
		want     string // route, or the error's text
		usage    bool
	}{
		{"/a", "/b", false, "local", false},
		{"a", "b/c", false, "local", false},
		{"host:/a", "/b", false, "pull from ssh", false},
		{"u@host:a", "/b", false, "pull from ssh", false},
		{"msync://h/m/p", "/b", false, "pull from msync-daemon", false},
		{"rsync://h/m", "/b", false, "pull from rsync-daemon", false},
		{"host:/a", "/b", true, "pull from rsync-shell", false},
		{"rsync://h:8873/m/p", "/b", false, "pull from rsync-daemon", false},
		{"rsync://h/m", "/b", true, "--rsync applies to a host:path endpoint, and neither rsync://h/m nor /b is one", true},
		{"/a", "host:/b", false, "push to ssh", false},
		{"/a", "msync://h:9/m", false, "push to msync-daemon", false},
		{"/a", "rsync://h/m", false, "push to rsync-daemon", false},
		{"/a", "host:/b", true, "push to rsync-shell", false},
		{"host:/a", "other:/b", false, "host:/a and other:/b are both remote: one side must be local", true},
		{"msync://h/m", "rsync://h/m", false, "msync://h/m and rsync://h/m are both remote: one side must be local", true},
		{"/a", "/b", true, "--rsync applies to a host:path endpoint, and neither /a nor /b is one", true},
		{"msync://h/m", "/b", true, "--rsync applies to a host:path endpoint, and neither msync://h/m nor /b is one", true},
		{"ftp://h/x", "/b", false, `"ftp://h/x": ftp:// endpoints are not supported (use host:path over ssh or msync://host/module)`, true},
		{"/a", "msync://h", false, `"msync://h": no module (want msync://host[:port]/module/path)`, true},
	} {
		r, err := Resolve(c.src, c.dst, c.rsync)
		got := r.String()
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("Resolve(%q, %q, rsync=%v) = %q, want %q", c.src, c.dst, c.rsync, got, c.want)
		}
		if IsUsage(err) != c.usage {
			t.Errorf("Resolve(%q, %q): usage error %v, want %v (%v)", c.src, c.dst, IsUsage(err), c.usage, err)
		}
	}
}

func TestStateDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	abs := func(p string) string { return filepath.Join(wd, p) }
	def := func(src, dst string) string {
		d, err := state.DefaultDir(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, c := range []struct {
		src, dst, flag string
		rsync          bool
		want           string
	}{
		{"a", "b", "", false, def(abs("a"), abs("b"))},
		{"a", "b", "/st", false, "/st"},
		// A pull keeps its state here, named by the remote end as written.
		{"host:/a", "b", "", false, def("host:/a", abs("b"))},
		{"rsync://h/m", "b", "", false, def("rsync://h/m", abs("b"))},
		// A push to msync keeps it on DST's host: the far side chooses
		// unless --state says.
		{"a", "host:/b", "", false, ""},
		{"a", "msync://h/m", "/st", false, "/st"},
		// Stock rsync keeps no state: it stays here.
		{"a", "rsync://h/m", "", false, def(abs("a"), "rsync://h/m")},
		{"a", "host:/b", "", true, def(abs("a"), "host:/b")},
		{"a", "host:/b", "/st", true, "/st"},
	} {
		r, err := Resolve(c.src, c.dst, c.rsync)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.StateDir(c.flag)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s (%s -> %s, --state %q): state %q, want %q", r, c.src, c.dst, c.flag, got, c.want)
		}
	}
}

func TestVerifyState(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	src, dst := t.TempDir(), t.TempDir()
	if got := VerifyState("", src, dst); got != "" {
		t.Errorf("before any pass: %q, want none", got)
	}
	if got := VerifyState("/st", src, dst); got != "/st" {
		t.Errorf("--state: %q, want /st", got)
	}
	sd, err := StateDir("", src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(sd, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := VerifyState("", src, dst); got != sd {
		t.Errorf("after a pass: %q, want %q", got, sd)
	}
	if got := VerifyState("", src, "host:/b"); got != "" {
		t.Errorf("remote DST: %q, want none (its state is on its host)", got)
	}
}
