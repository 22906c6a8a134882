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
