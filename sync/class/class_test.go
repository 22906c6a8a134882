package class

import (
	"testing"
	"time"

	"github.com/msync/msync/manifest"
)

func TestParse(t *testing.T) {
	for _, n := range All {
		if got, err := Parse(string(n)); err != nil || got != n {
			t.Fatalf("Parse(%q) = %q, %v", n, got, err)
		}
	}
	if _, err := Parse("mailman"); err == nil {
		t.Fatal("unknown class accepted")
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "": 0, "0d": 0} {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"7", "d", "-1d", "1.5d", "7days", "-3h", "7dd"} {
		if _, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) accepted", in)
		}
	}
}

func TestEximRules(t *testing.T) {
	r := EximSpool.Rules(Config{})
	f := func(p string) *manifest.Entry { return &manifest.Entry{Path: p, Type: manifest.TypeFile} }
	id := "input/1abcde-000001-AB"
	if why := r.Hold(f(id+"-D"), "", id+"-H"); why != "" {
		t.Errorf("whole pair held: %s", why)
	}
	if why := r.Hold(f(id+"-H"), id+"-D", ""); why != "" {
		t.Errorf("whole pair held: %s", why)
	}
	if r.Hold(f(id+"-D"), "", "input/2zzzzz-000001-AB-D") == "" || r.Hold(f(id+"-H"), "", "") == "" {
		t.Error("half pair not held")
	}
	if r.Hold(f("msglog/1abcde-000001-AB"), "", "") != "" || r.Hold(f("input/x-D"), "", "") != "" {
		t.Error("non-message held")
	}
	if !r.Last("input/a/1abcde-000001-AB-H") || r.Last(id+"-D") || !r.Queued(id+"-H") {
		t.Error("Last/Queued wrong")
	}
	if EximSpool.Rules(Config{Final: true}).Hold(f(id+"-D"), "", "") != "" {
		t.Error("half pair held in the final pass")
	}
}

func TestDarcsRules(t *testing.T) {
	r := Darcs.Rules(Config{})
	for p, want := range map[string]bool{"r/_darcs/patches/0000000012-ab.gz": true, "_darcs/pristine.hashed/x": true,
		"r/_darcs/inventories/y": true, "r/patches/x": false, "r/_darcs/hashed_inventory": false, "r/_darcs/patches": false} {
		if r.Immutable(p) != want {
			t.Errorf("Immutable(%q) = %v", p, !want)
		}
	}
	if !r.Last("r/_darcs/hashed_inventory") || !r.Last("_darcs/format") || r.Last("r/format") {
		t.Error("Last wrong")
	}
	if Generic.Rules(Config{}).Immutable("r/_darcs/patches/x") {
		t.Error("generic class treats darcs files as immutable")
	}
}
