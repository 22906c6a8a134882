package relpath

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// imports lists what the non-test Go files of the package in dir import.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no Go files in %s (%v)", dir, err)
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), n, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Imports {
			p, _ := strconv.Unquote(s.Path.Value)
			out = append(out, p)
		}
	}
	return out
}

// The lowest packages point down only: the path and xattr rules import
// nothing but the standard library, manifest, internal/fsx and
// internal/netx build on them (and their few external libraries) but
// never on another msync package, and the rsync protocol does not reach
// into msync's own.
func TestLeavesPointDown(t *testing.T) {
	const mod = "github.com/msync/msync/"
	if _, err := os.Stat("../../go.mod"); err != nil {
		t.Fatalf("not at internal/relpath of the module: %v", err)
	}
	leaves := []string{mod + "internal/relpath", mod + "internal/xattr"}
	for _, c := range []struct {
		dir   string
		allow []string // import path prefixes beyond the standard library
		deny  []string
	}{
		{dir: ".", allow: nil},
		{dir: "../xattr", allow: nil},
		{dir: "../../manifest", allow: append([]string{"github.com/cespare/xxhash/", "github.com/klauspost/compress/", "golang.org/x/sys/"}, leaves...)},
		{dir: "../fsx", allow: append([]string{"golang.org/x/sys/"}, leaves...)},
		{dir: "../netx", allow: append([]string{"golang.org/x/sys/"}, leaves...)},
		{dir: "../../transport/rsync", allow: []string{""}, deny: []string{mod + "transport/remote", mod + "transport/wire"}},
	} {
		for _, p := range imports(t, c.dir) {
			std := !strings.Contains(strings.SplitN(p, "/", 2)[0], ".")
			ok := std
			for _, a := range c.allow {
				ok = ok || strings.HasPrefix(p, a)
			}
			for _, d := range c.deny {
				ok = ok && p != d && !strings.HasPrefix(p, d+"/")
			}
			if !ok {
				t.Errorf("%s imports %s", c.dir, p)
			}
		}
	}
}
