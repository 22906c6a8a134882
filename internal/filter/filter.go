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
}

// Matcher is a list of exclude rules. The zero value excludes nothing.
type Matcher struct {
	rules []rule
}

// New compiles patterns, rejecting malformed ones.
func New(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, p := range patterns {
		if p == "" {
			return nil, fmt.Errorf("exclude: empty pattern")
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
		if !r.full {
			if glob(r.pat, base) {
				return true
			}
			continue
		}
		if r.anchored {
			if glob(r.pat, rel) {
				return true
			}
			continue
		}
		for s := rel; ; {
			if glob(r.pat, s) {
				return true
			}
			i := strings.IndexByte(s, '/')
			if i < 0 {
				break
			}
			s = s[i+1:]
		}
	}
	return false
}

// Empty reports whether there are no rules.
func (m *Matcher) Empty() bool { return m == nil || len(m.rules) == 0 }

// glob matches name against pattern where "**" may span "/".
func glob(pattern, name string) bool {
	i := strings.Index(pattern, "**")
	if i < 0 {
		ok, _ := path.Match(pattern, name)
		return ok
	}
	prefix, rest := pattern[:i], strings.TrimPrefix(pattern[i+2:], "/")
	restSlash := strings.HasPrefix(pattern[i+2:], "/")
	// Try every split of name where the prefix matches.
	for j := 0; j <= len(name); j++ {
		if !globPrefix(prefix, name[:j]) {
			continue
		}
		tail := name[j:]
		if rest == "" && !restSlash {
			return true
		}
		for k := 0; k <= len(tail); k++ {
			if k > 0 && tail[k-1] != '/' && restSlash {
				continue
			}
			if glob(rest, tail[k:]) {
				return true
			}
		}
	}
	return false
}

func globPrefix(prefix, s string) bool {
	if prefix == "" {
		return s == ""
	}
	ok, _ := path.Match(prefix, s)
	return ok
}
