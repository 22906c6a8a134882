package filter

import (
	"fmt"
	mbits "math/bits"
	"unicode/utf8"
)

// Limits on what New accepts: patterns come from plans, flags and peers,
// and matching costs at most the pattern's length times the name's.
const (
	MaxPatternLen = 4096    // bytes of one pattern
	MaxPatterns   = 10000   // patterns of one matcher
	MaxTotalLen   = 1 << 20 // bytes of all the patterns of one matcher
)

// token kinds of a compiled pattern.
const (
	tokRune      = iota // one rune, equal to r
	tokAny              // "?": one rune other than '/'
	tokClass            // "[...]": one rune in (or, negated, not in) ranges
	tokStar             // "*": any run of runes other than '/'
	tokDStar            // "**": any run of runes
	tokDirOpt           // "**/" is tokDirOpt, tokDirRun: nothing, or...
	tokDirRun           // ...any run of runes ending with '/'
	tokMaxRanges = 256  // ranges of one class
)

type token struct {
	kind   uint8
	negate bool
	r      rune
	ranges []rune // pairs lo, hi
}

// program is a pattern compiled for matching as an automaton: time
// proportional to the pattern's tokens times the name's runes, never
// exponential however many stars it has.
type program struct {
	toks  []token
	small bits // when fast
	fast  bool
}

// compile reads a pattern already checked by path.Match's syntax: "\"
// escapes, "[...]" classes with "^" and ranges, "*", "?", and "**".
func compile(pat string) (*program, error) {
	p := &program{}
	for i := 0; i < len(pat); {
		c := pat[i]
		switch {
		case c == '*':
			if i+1 < len(pat) && pat[i+1] == '*' {
				i += 2
				if i < len(pat) && pat[i] == '/' {
					i++
					p.toks = append(p.toks, token{kind: tokDirOpt}, token{kind: tokDirRun})
				} else {
					p.toks = append(p.toks, token{kind: tokDStar})
				}
				continue
			}
			p.toks = append(p.toks, token{kind: tokStar})
			i++
		case c == '?':
			p.toks = append(p.toks, token{kind: tokAny})
			i++
		case c == '[':
			t, n, err := compileClass(pat[i+1:])
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", pat, err)
			}
			p.toks = append(p.toks, t)
			i += 1 + n
		default:
			if c == '\\' {
				i++
				if i == len(pat) {
					return nil, fmt.Errorf("pattern %q: trailing backslash", pat)
				}
			}
			r, n := utf8.DecodeRuneInString(pat[i:])
			p.toks = append(p.toks, token{kind: tokRune, r: r})
			i += n
		}
	}
	p.small, p.fast = p.bits()
	return p, nil
}

// compileClass reads a class after its "[", returning the bytes it used
// (through the closing "]").
func compileClass(s string) (token, int, error) {
	t := token{kind: tokClass}
	i := 0
	if i < len(s) && s[i] == '^' {
		t.negate = true
		i++
	}
	one := func() (rune, error) {
		if i < len(s) && s[i] == '\\' {
			i++
		}
		if i >= len(s) {
			return 0, fmt.Errorf("unterminated class")
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		return r, nil
	}
	for {
		if i >= len(s) {
			return t, 0, fmt.Errorf("unterminated class")
		}
		if s[i] == ']' && len(t.ranges) > 0 {
			return t, i + 1, nil
		}
		lo, err := one()
		if err != nil {
			return t, 0, err
		}
		hi := lo
		if i < len(s) && s[i] == '-' {
			i++
			if hi, err = one(); err != nil {
				return t, 0, err
			}
		}
		if len(t.ranges) >= 2*tokMaxRanges {
			return t, 0, fmt.Errorf("class of more than %d ranges", tokMaxRanges)
		}
		t.ranges = append(t.ranges, lo, hi)
	}
}

func (t *token) one(r rune) bool {
	switch t.kind {
	case tokRune:
		return r == t.r
	case tokAny:
		return r != '/'
	case tokClass:
		in := false
		for j := 0; j < len(t.ranges); j += 2 {
			if t.ranges[j] <= r && r <= t.ranges[j+1] {
				in = true
				break
			}
		}
		return in != t.negate
	}
	return false
}

// testSteps, when set, counts the automaton's steps (tests bound the work).
var testSteps func(n int)

// match reports whether the whole of name matches; with suffixes, whether
// name or any part of it that starts after a '/' matches.
func (p *program) match(name string, suffixes bool) bool {
	if p.fast {
		return p.matchBits(&p.small, name, suffixes)
	}
	return p.matchSlow(name, suffixes)
}

// matchSlow is match for programs of any length.
func (p *program) matchSlow(name string, suffixes bool) bool {
	n := len(p.toks)
	cur := make([]bool, n+1)
	next := make([]bool, n+1)
	// closure follows the moves that consume nothing: every star may
	// match the empty string. They only go forward.
	closure := func(set []bool) {
		for s := 0; s < n; s++ {
			if !set[s] {
				continue
			}
			switch p.toks[s].kind {
			case tokStar, tokDStar:
				set[s+1] = true
			case tokDirOpt:
				set[s+1], set[s+2] = true, true
			}
		}
	}
	cur[0] = true
	closure(cur)
	steps := 0
	for i := 0; i < len(name); {
		r, w := utf8.DecodeRuneInString(name[i:])
		i += w
		clear(next)
		live := false
		for s := 0; s < n; s++ {
			if !cur[s] {
				continue
			}
			t := &p.toks[s]
			switch t.kind {
			case tokStar:
				if r != '/' {
					next[s] = true
				}
			case tokDStar:
				next[s] = true
			case tokDirOpt:
			case tokDirRun:
				next[s] = true
				if r == '/' {
					next[s+1] = true
				}
			default:
				if t.one(r) {
					next[s+1] = true
				}
			}
		}
		steps += n
		if suffixes && r == '/' {
			next[0] = true
		}
		closure(next)
		for _, v := range next {
			if v {
				live = true
				break
			}
		}
		cur, next = next, cur
		if !live && !suffixes {
			break
		}
	}
	if testSteps != nil {
		testSteps(steps)
	}
	return cur[n]
}

// bits is the automaton of a program of fewer than 64 tokens, its states
// as the bits of a word: matching allocates nothing.
type bits struct {
	eps1, eps2 uint64 // states that may move one (a star) or two (tokDirOpt) on nothing
	stay       uint64 // states that consume any rune and stay (**, the run of **/)
	star       uint64 // states that consume a rune other than '/' and stay
	dirRun     uint64 // the run of **/: moves on '/'
	single     uint64 // states that consume one rune and move on
	accept     uint64
}

func (p *program) bits() (bits, bool) {
	n := len(p.toks)
	if n >= 63 {
		return bits{}, false
	}
	var b bits
	for s, t := range p.toks {
		m := uint64(1) << s
		switch t.kind {
		case tokStar:
			b.eps1 |= m
			b.star |= m
		case tokDStar:
			b.eps1 |= m
			b.stay |= m
		case tokDirOpt:
			b.eps1 |= m
			b.eps2 |= m
		case tokDirRun:
			b.stay |= m
			b.dirRun |= m
		default:
			b.single |= m
		}
	}
	b.accept = 1 << n
	return b, true
}

func (b *bits) closure(set uint64) uint64 {
	for {
		next := set | (set&b.eps1)<<1 | (set&b.eps2)<<2
		if next == set {
			return set
		}
		set = next
	}
}

// matchBits is match for a program of fewer than 64 tokens.
func (p *program) matchBits(b *bits, name string, suffixes bool) bool {
	cur := b.closure(1)
	start := cur
	steps := 0
	for i := 0; i < len(name); {
		r, w := utf8.DecodeRuneInString(name[i:])
		i += w
		next := cur & b.stay
		if r != '/' {
			next |= cur & b.star
		} else {
			next |= (cur & b.dirRun) << 1
		}
		for m := cur & b.single; m != 0; m &= m - 1 {
			s := mbits.TrailingZeros64(m)
			if p.toks[s].one(r) {
				next |= 1 << (s + 1)
			}
			steps++
		}
		steps++
		if suffixes && r == '/' {
			next |= start
		}
		cur = b.closure(next)
		if cur == 0 && !suffixes {
			break
		}
	}
	if testSteps != nil {
		testSteps(steps)
	}
	return cur&b.accept != 0
}
