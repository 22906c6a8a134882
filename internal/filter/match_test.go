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
	pats := []string{strings.Repeat("*", 40) + "Z", strings.Repeat("*/", 20) + "Z", "/" + strings.Repeat("**", 20) + "Z",
		strings.Repeat("*", 100) + "Z"} // the last beyond the one-word automaton
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
	// Each rule: at most its tokens and one more per rune of the name.
	if bound := int64((42 + 42 + 22 + 102) * len(name)); steps.Load() > bound {
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

// The one-word automaton and the general one agree, on random patterns
// of every kind of token.
func TestBitsAgreeWithSlow(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	parts := []string{"a", "b", "/", "*", "**", "**/", "?", "[ab]", "[^a]", "\\*", "é"}
	for range 3000 {
		var p, n strings.Builder
		for range 1 + rng.IntN(6) {
			p.WriteString(parts[rng.IntN(len(parts))])
		}
		for range rng.IntN(10) {
			n.WriteString([]string{"a", "b", "/", "*", "é", "c"}[rng.IntN(6)])
		}
		prog, err := compile(p.String())
		if err != nil {
			t.Fatalf("%q: %v", p.String(), err)
		}
		if !prog.fast {
			t.Fatalf("%q: not on the fast path", p.String())
		}
		for _, suffixes := range []bool{false, true} {
			if a, b := prog.match(n.String(), suffixes), prog.matchSlow(n.String(), suffixes); a != b {
				t.Fatalf("%q on %q (suffixes %v): bits say %v, general %v", p.String(), n.String(), suffixes, a, b)
			}
		}
	}
}

// refGlob is the recursive matcher the automaton replaced (exponential in
// the number of "**"), kept as the reference for its semantics.
func refGlob(pattern, name string) bool {
	i := strings.Index(pattern, "**")
	if i < 0 {
		ok, _ := path.Match(pattern, name)
		return ok
	}
	prefix, rest := pattern[:i], strings.TrimPrefix(pattern[i+2:], "/")
	restSlash := strings.HasPrefix(pattern[i+2:], "/")
	for j := 0; j <= len(name); j++ {
		if prefix == "" && j > 0 {
			break
		}
		if prefix != "" {
			if ok, _ := path.Match(prefix, name[:j]); !ok {
				continue
			}
		}
		tail := name[j:]
		if rest == "" && !restSlash {
			return true
		}
		for k := 0; k <= len(tail); k++ {
			if k > 0 && tail[k-1] != '/' && restSlash {
				continue
			}
			if refGlob(rest, tail[k:]) {
				return true
			}
		}
	}
	return false
}

// Short random patterns with "**" match as the recursive matcher did.
func TestMatchAgreesWithOldGlob(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	parts := []string{"a", "b", "/", "*", "**", "**/", "?", "[ab]", "x/"}
	for range 3000 {
		var p, n strings.Builder
		for range 1 + rng.IntN(5) {
			p.WriteString(parts[rng.IntN(len(parts))])
		}
		for range rng.IntN(9) {
			n.WriteString([]string{"a", "b", "/", "x"}[rng.IntN(4)])
		}
		prog, err := compile(p.String())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := prog.match(n.String(), false), refGlob(p.String(), n.String()); got != want {
			t.Fatalf("%q on %q = %v, the recursive matcher says %v", p.String(), n.String(), got, want)
		}
	}
}

// Matching a scan's every path allocates nothing for ordinary patterns.
func TestExcludedAllocatesNothing(t *testing.T) {
	m, err := New([]string{"*.tmp", "cache/", "qfiles/**/*.pck", "/top"})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { m.Excluded("home/u/mail/qfiles/in/a.pck", false) }); n != 0 {
		t.Fatalf("%v allocations per path", n)
	}
}
