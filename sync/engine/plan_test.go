package engine

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/msync/msync/manifest"
)

// ent builds a test entry: "d:path" a directory, "l:path>target" a
// symlink, "path" a file; size, mtime and mode from the arguments.
func ent(spec string, size, mtime int64, mode uint32) *manifest.Entry {
	e := &manifest.Entry{Type: manifest.TypeFile, Size: size, Mtime: mtime, Mode: mode, Inode: 1}
	switch {
	case strings.HasPrefix(spec, "d:"):
		e.Type, spec = manifest.TypeDir, spec[2:]
	case strings.HasPrefix(spec, "l:"):
		e.Type, spec = manifest.TypeSymlink, spec[2:]
		spec, e.LinkTarget, _ = strings.Cut(spec, ">")
	}
	e.Path = spec
	return e
}

func sourceSteps(t *testing.T, scan, last []*manifest.Entry) []string {
	t.Helper()
	p := PlanSource(&manifest.SliceIterator{Entries: scan}, &manifest.SliceIterator{Entries: last})
	var out []string
	for {
		s, err := p.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s.Op.String()+" "+s.Path())
	}
}

func TestPlanSource(t *testing.T) {
	root := ent("d:", 0, 1, 0o755)
	tests := []struct {
		name       string
		scan, last []*manifest.Entry
		want       string
	}{
		{"first pass", []*manifest.Entry{root, ent("a", 1, 1, 0o644)}, nil,
			"create ,create a"},
		{"unchanged", []*manifest.Entry{root, ent("a", 1, 1, 0o644)}, []*manifest.Entry{root, ent("a", 1, 1, 0o644)},
			"keep ,keep a"},
		{"size, mtime, mode", []*manifest.Entry{root, ent("a", 2, 1, 0o644), ent("b", 1, 2, 0o644), ent("c", 1, 1, 0o600)},
			[]*manifest.Entry{root, ent("a", 1, 1, 0o644), ent("b", 1, 1, 0o644), ent("c", 1, 1, 0o644)},
			"keep ,update a,update b,meta c"},
		{"type change", []*manifest.Entry{root, ent("l:a>x", 1, 1, 0o777)}, []*manifest.Entry{root, ent("a", 1, 1, 0o777)},
			"keep ,update a"},
		{"link target", []*manifest.Entry{root, ent("l:a>y", 1, 1, 0o777)}, []*manifest.Entry{root, ent("l:a>x", 1, 1, 0o777)},
			"keep ,update a"},
		{"deleted subtree: its top only", []*manifest.Entry{root, ent("z", 1, 1, 0o644)},
			[]*manifest.Entry{root, ent("d:d", 0, 1, 0o755), ent("d/f", 1, 1, 0o644), ent("d:d/e", 0, 1, 0o755), ent("d/e/g", 1, 1, 0o644), ent("d.x", 1, 1, 0o644)},
			"keep ,delete d,delete d.x,create z"},
		{"directory became a file", []*manifest.Entry{root, ent("d", 1, 1, 0o644)},
			[]*manifest.Entry{root, ent("d:d", 0, 1, 0o755), ent("d/f", 1, 1, 0o644)},
			"keep ,update d,delete d/f"},
		{"source emptied: the root stays", nil, []*manifest.Entry{root, ent("a", 1, 1, 0o644)},
			"delete a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(sourceSteps(t, tt.scan, tt.last), ",")
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// A file replaced by another inode with the same size and mtime is an
// update, which rsync's quick check would miss.
func TestPlanSourceReplaced(t *testing.T) {
	a, b := ent("a", 1, 1, 0o644), ent("a", 1, 1, 0o644)
	b.Inode = 2
	if got := sourceSteps(t, []*manifest.Entry{b}, []*manifest.Entry{a}); len(got) != 1 || got[0] != "update a" {
		t.Errorf("got %v", got)
	}
}

type failing struct{ err error }

func (f failing) Next() (*manifest.Entry, error) { return nil, f.err }

// A scan's error ends the plan with that error.
func TestPlanSourceError(t *testing.T) {
	boom := errors.New("boom")
	_, err := PlanSource(failing{boom}, manifest.Empty).Next()
	if !errors.Is(err, boom) {
		t.Errorf("got %v", err)
	}
}

// planRules are class rules for planner tests: hold holds a path, last
// defers one.
type planRules struct{ hold, last string }

func (r planRules) Class() string { return "test" }
func (r planRules) Hold(s *manifest.Entry, prev, next string) string {
	if s.Path == r.hold {
		return "busy"
	}
	return ""
}
func (r planRules) Immutable(string) bool { return false }
func (r planRules) Last(p string) bool    { return p == r.last }
func (r planRules) Growing(string) bool   { return false }
func (r planRules) Transient(string) bool { return false }
func (r planRules) Queued(string) bool    { return false }

// plan runs the planner over the three streams with no disk: the sink
// notes each action as "op path" and fails the actions in fail.
func plan(t *testing.T, c planConfig, src, dst, last []*manifest.Entry, fail map[string]bool) []string {
	t.Helper()
	var out []string
	sink := func(a *action) {
		path := ""
		switch {
		case a.s != nil:
			path = a.s.Path
		case a.d != nil:
			path = a.d.Path
		}
		note := a.op.String() + " " + path
		switch {
		case a.op == actLink:
			note += " => " + a.leader.path
		case a.op == actHold || a.op == actSkip:
			note += " (" + a.why + ")"
		case a.op == actCopy && a.last:
			note += " (last)"
		}
		out = append(out, note)
		if fail[a.op.String()+" "+path] {
			a.err = errors.New("failed")
		}
	}
	p := newPlanner(c, &manifest.SliceIterator{Entries: src}, &manifest.SliceIterator{Entries: dst}, &manifest.SliceIterator{Entries: last}, sink)
	for {
		r, ok, err := p.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		p.popTo(r.path)
		p.step(r.s, r.d, r.m)
		p.done(r)
	}
	p.popTo("\x00")
	return out
}

func linked(e *manifest.Entry, ino uint64) *manifest.Entry {
	e.Inode, e.Nlink = ino, 2
	return e
}

// TestPlanner: each row is the three streams a pass merges and the actions
// the planner decides, in order, with no disk.
func TestPlanner(t *testing.T) {
	root := func() *manifest.Entry { return ent("d:", 0, 1, 0o755) }
	f := func(p string, size, mtime int64) *manifest.Entry { return ent(p, size, mtime, 0o644) }
	es := func(e ...*manifest.Entry) []*manifest.Entry { return append([]*manifest.Entry{root()}, e...) }
	base := planConfig{root: true}
	tests := []struct {
		name           string
		c              planConfig
		src, dst, last []*manifest.Entry
		fail           map[string]bool
		want           string
	}{
		{name: "unchanged", src: es(f("a", 1, 1)), dst: es(f("a", 1, 1)), last: es(f("a", 1, 1)),
			want: "keep ,keep a"},
		{name: "new file", src: es(f("a", 1, 1)), dst: es(),
			want: "keep ,copy a,fixup "},
		{name: "changed size", src: es(f("a", 2, 1)), dst: es(f("a", 1, 1)),
			want: "keep ,copy a,fixup "},
		{name: "changed mtime: quick check copies", src: es(f("a", 1, 2)), dst: es(f("a", 1, 1)),
			want: "keep ,copy a,fixup "},
		{name: "mode only", src: es(ent("a", 1, 1, 0o600)), dst: es(f("a", 1, 1)),
			want: "keep ,meta a"},
		{name: "replaced inode, same size and mtime", src: es(linked(f("a", 1, 1), 7)), dst: es(f("a", 1, 1)), last: es(f("a", 1, 1)),
			want: "keep ,copy a,fixup "},
		{name: "deleted: msync's goes", src: es(), dst: es(f("a", 1, 1)), last: es(f("a", 1, 1)),
			want: "keep ,delete a,fixup "},
		{name: "extraneous kept", src: es(), dst: es(f("a", 1, 1)),
			want: "keep ,extra a"},
		{name: "extraneous with --delete", c: planConfig{root: true, deleteExtraneous: true}, src: es(), dst: es(f("a", 1, 1)),
			want: "keep ,delete a,fixup "},
		{name: "only asked", c: planConfig{root: true, deleteOnlyAsked: true}, src: es(), dst: es(f("a", 1, 1)), last: es(f("a", 1, 1)),
			want: "keep ,extra a"},
		{name: "deleted directory: its contents go with it", src: es(f("z", 1, 1)),
			dst: es(ent("d:d", 0, 1, 0o755), f("d/x", 1, 1), f("z", 1, 1)), last: es(ent("d:d", 0, 1, 0o755), f("d/x", 1, 1), f("z", 1, 1)),
			want: "keep ,delete d,keep z,fixup "},
		{name: "file becomes a directory", src: es(ent("d:a", 0, 1, 0o755), f("a/x", 1, 1)), dst: es(f("a", 1, 1)),
			want: "keep ,replace a,create a,copy a/x,fixup a,fixup "},
		{name: "directory becomes a file", src: es(f("a", 1, 1)), dst: es(ent("d:a", 0, 1, 0o755), f("a/x", 1, 1)),
			want: "keep ,replace a,copy a,fixup "},
		{name: "replace fails: recorded as it was", src: es(f("a", 1, 1)), dst: es(ent("d:a", 0, 1, 0o755), f("a/x", 1, 1)),
			fail: map[string]bool{"replace a": true}, want: "keep ,replace a"},
		{name: "new directory", src: es(ent("d:d", 0, 1, 0o755), f("d/x", 1, 1)), dst: es(),
			want: "keep ,create d,copy d/x,fixup d,fixup "},
		{name: "directory not made: contents orphaned", src: es(ent("d:d", 0, 1, 0o755), f("d/x", 1, 1)), dst: es(),
			fail: map[string]bool{"create d": true}, want: "keep ,create d,orphan d/x,fixup "},
		{name: "symlink target changed", src: es(ent("l:l>b", 1, 1, 0o777)), dst: es(ent("l:l>a", 1, 1, 0o777)),
			want: "keep ,create l,fixup "},
		{name: "hard links: leader copied, follower linked", src: es(linked(f("a", 1, 1), 5), linked(f("b", 1, 1), 5)), dst: es(),
			want: "keep ,copy a,link b => a,fixup "},
		{name: "hard links in place", src: es(linked(f("a", 1, 1), 5), linked(f("b", 1, 1), 5)),
			dst:  es(linked(f("a", 1, 1), 9), linked(f("b", 1, 1), 9)),
			want: "keep ,keep a,linked b"},
		{name: "held by the class's rules", c: planConfig{root: true, rules: planRules{hold: "a"}},
			src: es(f("a", 2, 2)), dst: es(f("a", 1, 1)), want: "keep ,hold a (busy)"},
		{name: "deferred to the end of its directory", c: planConfig{root: true, rules: planRules{last: "d/p"}},
			src: es(ent("d:d", 0, 1, 0o755), f("d/p", 1, 1), f("d/q", 1, 1)), dst: es(ent("d:d", 0, 1, 0o755)),
			want: "keep ,keep d,copy d/p (last),copy d/q,fixup d,release "},
		{name: "device nodes need root", c: planConfig{},
			src: es(&manifest.Entry{Path: "dev", Type: manifest.TypeChar, Rdev: 1}), dst: es(),
			want: "keep ,skip dev (device nodes need root)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			if c == (planConfig{}) && tt.name != "device nodes need root" {
				c = base
			}
			got := strings.Join(plan(t, c, tt.src, tt.dst, tt.last, tt.fail), ",")
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// Nothing below a directory the scan read incompletely is deleted, at any
// depth; a path gone beside it is.
func TestPlanSourceIncomplete(t *testing.T) {
	root := ent("d:", 0, 1, 0o755)
	locked := ent("d:locked", 0, 1, 0o755)
	partial := *locked
	partial.Incomplete = true
	scan := []*manifest.Entry{root, &partial, ent("d:locked/open", 0, 1, 0o755), ent("z", 1, 1, 0o644)}
	last := []*manifest.Entry{root, ent("gone", 1, 1, 0o644), locked, ent("locked/inside", 1, 1, 0o644),
		ent("d:locked/open", 0, 1, 0o755), ent("locked/open/f", 1, 1, 0o644), ent("d:locked/sub", 0, 1, 0o755),
		ent("locked/sub/x", 1, 1, 0o644), ent("locked.x", 1, 1, 0o644), ent("z", 1, 1, 0o644)}
	got := strings.Join(sourceSteps(t, scan, last), ",")
	if want := "keep ,delete gone,keep locked,keep locked/open,delete locked.x,keep z"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
