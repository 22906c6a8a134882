package relpath

import "testing"

func TestWithin(t *testing.T) {
	for _, c := range []struct {
		p, root string
		want    bool
	}{
		{"", "", true},
		{"a", "", true},
		{"a/b", "a", true},
		{"a", "a", true},
		{"ab", "a", false},
		{"a/bc", "a/b", false},
		{"a", "a/b", false},
		{"/", "/", true},
		{"/srv", "/", true},
		{"/srv/data/x", "/srv/data", true},
		{"/srv/database", "/srv/data", false},
		{"/srv", "/srv/data", false},
		{"srv", "/", false},
	} {
		if got := Within(c.p, c.root); got != c.want {
			t.Errorf("Within(%q, %q) = %v, want %v", c.p, c.root, got, c.want)
		}
	}
}

func TestValid(t *testing.T) {
	for _, p := range []string{"", "a", "a/b", "a b/.c"} {
		if err := Valid(p); err != nil {
			t.Errorf("Valid(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"/a", "a//b", "a/", "./a", "a/..", "a\x00b"} {
		if Valid(p) == nil {
			t.Errorf("Valid(%q) = nil, want an error", p)
		}
	}
}
