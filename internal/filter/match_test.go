package filter

import (
	"math/rand/v2"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Without "**", a pattern matches a name exactly as path.Match says.
func TestMatchAgreesWithPathMatch(t *testing.T) {
	pats := []string{"*", "a*", "*a", "a*b*c", "?", "a?c", "[ab]*", "[^ab]?", "[a-c]x", "\\*x", "a/*", "*/b",
		"*.tmp", "a\\[b", "[\\]]", "é?", "?/?", "a*/b*", "[!]", "***x"}
	names := []string{"", "a", "b", "abc", "aXbYc", "a/b", "x/y/z", "*x", "ax", "cx", "é1", "a[b", "]", "a.tmp",
		"xa", "a/bc", "ab/b"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteByte("ab/x."[rng.IntN(5)])
		}
		names = append(names, b.String())
	}
	for _, p := range pats {
		if strings.Contains(p, "**") {
			continue
		}
		prog, err := compile(p)
		if _, perr := path.Match(p, ""); perr != nil {
			continue // New refuses it first
		}
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		for _, n := range names {
			want, _ := path.Match(p, n)
			if got := prog.match(n, false); got != want {
				t.Errorf("%q on %q = %v, path.Match says %v", p, n, got, want)
			}
		}
	}
}

func TestDoubleStar(t *testing.T) {
	cases := []struct {
		pat, name string
		match     bool
	}{
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/xb", false},
		{"a/**", "a/x/y", true},
		{"a/**", "b/x", false},
		{"**", "any/thing", true},
		{"**/tmp", "tmp", true},
		{"**/tmp", "a/b/tmp", true},
		{"**/tmp", "a/btmp", false},
		{"x**y", "x/a/y", true},
		{"x**y/z", "x/a/y/z", true},
		{"a/**/*.pck", "a/q/r.pck", true},
		{"a/**/*.pck", "a/q/r.pckx", false},
	}
	for _, c := range cases {
		prog, err := compile(c.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := prog.match(c.name, false); got != c.match {
			t.Errorf("%q on %q = %v, want %v", c.pat, c.name, got, c.match)
		}
	}
}

// A pattern of many stars that cannot match costs the pattern's length
// times the name's, not an exponential search: 40 "*" then "Z" against a
// long name took tens of seconds of CPU with backtracking.
func TestManyStarsLinear(t *testing.T) {
	var steps atomic.Int64
	testSteps = func(n int) { steps.Add(int64(n)) }
	defer func() { testSteps = nil }()
	pats := []string{strings.Repeat("*", 40) + "Z", strings.Repeat("*/", 20) + "Z", "/" + strings.Repeat("**", 20) + "Z"}
	m, err := New(pats)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("a", 200) + "/" + strings.Repeat("a/", 100) + strings.Repeat("b", 200)
	done := make(chan bool, 1)
	go func() { done <- m.Excluded(name, false) }()
	select {
	case ex := <-done:
		if ex {
			t.Fatal("excluded a name without a Z")
		}
	case <-time.After(20 * time.Second): // the automaton needs well under a millisecond
		t.Fatal("matching 40 stars did not finish in 20s: exponential backtracking")
	}
	// Each rule: its tokens times the name's runes, and once more at most.
	if bound := int64(3 * 42 * len(name)); steps.Load() > bound {
		t.Fatalf("%d steps, want at most %d", steps.Load(), bound)
	}
}

func TestPatternLimits(t *testing.T) {
	if _, err := New([]string{strings.Repeat("a", MaxPatternLen+1)}); err == nil {
		t.Error("an over-long pattern was accepted")
	}
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = "x"
	}
	if _, err := New(many); err == nil {
		t.Error("too many patterns were accepted")
	}
}
