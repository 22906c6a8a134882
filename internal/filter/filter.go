// Package filter matches paths against rsync-style exclude patterns.
//
//   - A pattern without a slash matches the final path component at any depth.
//   - A pattern with a slash (other than a trailing one) or "**" matches the
//     whole relative path; anchored with a leading "/", or else at any
//     directory boundary ("sub/foo" matches "top/sub/foo").
//   - A trailing "/" matches directories only.
//   - "*" and "?" do not cross "/"; "**" does; "[...]" is a character class.
//
// An excluded directory excludes everything below it.
package filter

import (
	"fmt"
	"path"
	"strings"
)

type rule struct {
	pat      string
	anchored bool
	dirOnly  bool
	full     bool // match against the path, not the base name
	prog     *program
}

// Matcher is a list of exclude rules. The zero value excludes nothing.
type Matcher struct {
	rules []rule
}

// New compiles patterns, rejecting malformed ones.
func New(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	if len(patterns) > MaxPatterns {
		return nil, fmt.Errorf("exclude: %d patterns, more than %d", len(patterns), MaxPatterns)
	}
	total := 0
	for _, p := range patterns {
		if p == "" {
			return nil, fmt.Errorf("exclude: empty pattern")
		}
		if total += len(p); len(p) > MaxPatternLen || total > MaxTotalLen {
			return nil, fmt.Errorf("exclude: pattern %.40q...: longer than %d bytes, or the patterns together longer than %d", p, MaxPatternLen, MaxTotalLen)
		}
		r := rule{pat: p}
		if strings.HasSuffix(r.pat, "/") {
			r.dirOnly = true
			r.pat = strings.TrimRight(r.pat, "/")
		}
		if strings.HasPrefix(r.pat, "/") {
			r.anchored = true
			r.pat = strings.TrimLeft(r.pat, "/")
		}
		r.full = r.anchored || strings.Contains(r.pat, "/") || strings.Contains(r.pat, "**")
		if r.pat == "" {
			return nil, fmt.Errorf("exclude: pattern %q matches nothing", p)
		}
		if _, err := path.Match(strings.ReplaceAll(r.pat, "**", "*"), ""); err != nil {
			return nil, fmt.Errorf("exclude: bad pattern %q: %w", p, err)
		}
		prog, err := compile(r.pat)
		if err != nil {
			return nil, fmt.Errorf("exclude: bad pattern %q: %w", p, err)
		}
		r.prog = prog
		m.rules = append(m.rules, r)
	}
	return m, nil
}

// Excluded reports whether rel (a path relative to the transfer root) is
// excluded. Callers test each directory before descending, so ancestors
// need not be checked here.
func (m *Matcher) Excluded(rel string, isDir bool) bool {
	if m == nil || rel == "" {
		return false
	}
	base := rel[strings.LastIndexByte(rel, '/')+1:]
	for _, r := range m.rules {
		if r.dirOnly && !isDir {
			continue
		}
		switch {
		case !r.full:
			if r.prog.match(base, false) {
				return true
			}
		case r.anchored:
			if r.prog.match(rel, false) {
				return true
			}
		default:
			// At any directory boundary: rel or any part after a '/'.
			if r.prog.match(rel, true) {
				return true
			}
		}
	}
	return false
}

// Empty reports whether there are no rules.
func (m *Matcher) Empty() bool { return m == nil || len(m.rules) == 0 }
