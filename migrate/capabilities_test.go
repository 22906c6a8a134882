package migrate

import (
	"context"
	"testing"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/transport"
)

func TestCapabilities(t *testing.T) {
	for _, k := range []transport.Kind{transport.Local, transport.SSH, transport.Daemon} {
		c := CapabilitiesOf(k)
		if c != msyncEnd {
			t.Errorf("%s: %+v, want everything", kindName(k), c)
		}
	}
	for _, k := range []transport.Kind{transport.RsyncDaemon, transport.RsyncShell} {
		c := CapabilitiesOf(k)
		if c.Xattrs || c.ACLs || c.NsMtimes || c.HardLinkedSpecials {
			t.Errorf("%s: carries %+v; protocol 27 carries no xattrs, ACLs, ns mtimes or hard-linked specials", kindName(k), c)
		}
		if !c.Owners || !c.HardLinks || !c.Specials {
			t.Errorf("%s: %+v; -lHogDtpr --numeric-ids carries owners, hard links and specials", kindName(k), c)
		}
		if c.KeepsState || c.DryRun || c.TrustDest || c.DeltaAlways || c.FsyncFile || c.Classes || c.OwnDeletes {
			t.Errorf("%s as a destination: %+v; stock rsync does none of these", kindName(k), c)
		}
	}
}

// TestXattrsFollowTheEnds checks the one decision on xattrs: a pass from
// stock rsync, a push to it and a verification against it leave them out.
func TestXattrsFollowTheEnds(t *testing.T) {
	for _, c := range []struct {
		src, dst string
		rsync    bool
		pass     bool   // the pass copies xattrs
		note     string // why verify does not compare them
	}{
		{"/a", "/b", false, true, ""},
		{"host:/a", "/b", false, true, ""},
		{"msync://h/m", "/b", false, true, ""},
		{"/a", "host:/b", false, true, ""},
		{"rsync://h/m", "/b", false, false, "xattrs and ACLs: rsync's protocol 27 carries none"},
		{"host:/a", "/b", true, false, "xattrs and ACLs: rsync's protocol 27 carries none"},
		{"/a", "rsync://h/m", false, false, "xattrs and ACLs: rsync's protocol 27 carries none"},
		{"/a", "host:/b", true, false, "xattrs and ACLs: rsync's protocol 27 carries none"},
	} {
		r, err := Resolve(c.src, c.dst, c.rsync)
		if err != nil {
			t.Fatal(err)
		}
		eo := r.engineOptions(c.src, c.dst, "/st", &Options{}, engine.FsyncPass, engine.DeltaAuto)
		if eo.Xattrs != c.pass {
			t.Errorf("%s: pass xattrs %v, want %v", r, eo.Xattrs, c.pass)
		}
		if eo = r.engineOptions(c.src, c.dst, "/st", &Options{NoXattrs: true}, engine.FsyncPass, engine.DeltaAuto); eo.Xattrs {
			t.Errorf("%s: --no-xattrs copies xattrs", r)
		}
		if _, got := r.xattrs(); got != c.note {
			t.Errorf("%s: verify note %q, want %q", r, got, c.note)
		}
	}
}

func TestRefuse(t *testing.T) {
	all := Options{DryRun: true, TrustDest: true, Delta: "always", Fsync: "file", Class: "darcs"}
	for _, c := range []struct {
		dst  string
		o    Options
		want string
	}{
		{"rsync://h/m", Options{}, ""},
		{"rsync://h/m", Options{Delta: "never", Fsync: "none", DeleteExtraneous: true, Final: true}, ""},
		{"rsync://h/m", Options{DryRun: true}, "pushing to stock rsync: not supported with --dry-run"},
		{"rsync://h/m", Options{Class: "generic"}, "pushing to stock rsync: not supported with a dataset class (its rules run in msync's receiver)"},
		{"rsync://h/m", all, "pushing to stock rsync: not supported with --dry-run, --trust-dest, --delta=always (files cross whole), " +
			"--fsync=file (the far side's rsync decides), a dataset class (its rules run in msync's receiver)"},
		{"msync://h/m", all, ""},
		{"host:/b", all, ""},
		{"/b", all, ""},
	} {
		r, err := Resolve("/a", c.dst, false)
		if err != nil {
			t.Fatal(err)
		}
		err = r.Refuse(&c.o)
		got := ""
		if err != nil {
			got = err.Error()
			if !IsUsage(err) {
				t.Errorf("%s: %v is not a usage error", r, err)
			}
		}
		if got != c.want {
			t.Errorf("%s with %+v: %q, want %q", r, c.o, got, c.want)
		}
	}
	// Pass refuses before it connects: nothing listens on port 1.
	_, _, err := Pass(context.Background(), t.TempDir(), "rsync://127.0.0.1:1/m", Options{Kind: engine.Catchup, DryRun: true, Fsync: "pass", Delta: "auto"})
	if err == nil || err.Error() != "pushing to stock rsync: not supported with --dry-run" {
		t.Errorf("Pass to stock rsync with --dry-run: %v", err)
	}
}
