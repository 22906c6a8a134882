package filter

import "testing"

func TestExcluded(t *testing.T) {
	cases := []struct {
		pat   string
		path  string
		dir   bool
		match bool
	}{
		{"*.tmp", "a/b/x.tmp", false, true},
		{"*.tmp", "a/b/x.tmpl", false, false},
		{"*.bak", "qfiles/in/1.pck.bak", false, true},
		{"cache/", "home/u/cache", true, true},
		{"cache/", "home/u/cache", false, false},
		{"/top", "top", true, true},
		{"/top", "a/top", true, false},
		{"sub/foo", "top/sub/foo", false, true},
		{"sub/foo", "top/xsub/foo", false, false},
		{"qfiles/**/*.pck", "mailman/qfiles/in/a.pck", false, true},
		{"qfiles/**/*.pck", "mailman/qfiles/a.pck", false, true},
		{"**/tmp", "a/b/tmp", true, true},
		{"a?c", "x/abc", false, true},
		{"[ab]*", "x/bz", false, true},
		{"[ab]*", "x/cz", false, false},
	}
	for _, c := range cases {
		m, err := New([]string{c.pat})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Excluded(c.path, c.dir); got != c.match {
			t.Errorf("%q on %q (dir=%v) = %v, want %v", c.pat, c.path, c.dir, got, c.match)
		}
	}
	if _, err := New([]string{"[a"}); err == nil {
		t.Error("malformed pattern accepted")
	}
	var nilm *Matcher
	if nilm.Excluded("x", false) {
		t.Error("nil matcher excluded")
	}
}
