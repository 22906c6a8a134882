// Package module is the one notion of a served module that both daemons
// share: `msync serve --listen` (msync's protocol) and `msync serve
// --rsync` (rsync's). A module is a host directory served under a name;
// a daemon finds it by the name a client sends, opens it once (Open) and
// resolves every client path beneath that descriptor (fsx.Root, openat2
// RESOLVE_BENEATH), never by a path string. Messages name the module,
// never where it lives on the host.
package module

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/internal/relpath"
)

// Module is a directory a daemon serves under a name.
type Module struct {
	Name     string
	Path     string // absolute host path; never shown to a client
	ReadOnly bool   // the module is a source only: pushes are refused
}

// Parse reads "name=path[,ro]" (the --module flag); the path is made
// absolute.
func Parse(s string) (Module, error) {
	name, path, ok := strings.Cut(s, "=")
	if !ok || name == "" || path == "" || strings.ContainsAny(name, "/ ") {
		return Module{}, fmt.Errorf("--module %q: want name=path[,ro]", s)
	}
	m := Module{Name: name, Path: path}
	if p, ok := strings.CutSuffix(path, ",ro"); ok {
		m.Path, m.ReadOnly = p, true
	}
	abs, err := filepath.Abs(m.Path)
	if err != nil {
		return m, err
	}
	m.Path = abs
	return m, nil
}

// Lookup returns the module called name among mods.
func Lookup(mods []Module, name string) (Module, bool) {
	for _, m := range mods {
		if m.Name == name {
			return m, true
		}
	}
	return Module{}, false
}

// Names lists the modules' names, in order, for a listing or a refusal.
func Names(mods []Module) []string {
	names := make([]string, 0, len(mods))
	for _, m := range mods {
		names = append(names, m.Name)
	}
	return names
}

// Open opens the module's directory as a Root named after the module:
// the one descriptor beneath which a request resolves its paths. The
// error names the module and the cause, not the host path.
func (m Module) Open() (*fsx.Root, error) {
	r, err := fsx.OpenRootAs(m.Path, m.Name)
	if err != nil {
		return nil, fmt.Errorf("module %q: %w", m.Name, errors.Unwrap(err))
	}
	return r, nil
}

// HostPath is the host path of sub (a module-relative path), for keying
// state only: it is never opened.
func (m Module) HostPath(sub string) string { return filepath.Join(m.Path, sub) }

// Rel returns the module-relative, slash-separated path of the host path
// p ("." for the module's root), or an error when p is not the module's
// directory or beneath it.
func (m Module) Rel(p string) (string, error) {
	base, p := filepath.Clean(m.Path), filepath.Clean(p)
	if !relpath.Within(p, base) {
		return "", fmt.Errorf("%s is not beneath module %q", p, m.Name)
	}
	rel, err := filepath.Rel(base, p)
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(rel), nil
}

// OpenDir resolves the client's directory sub (a clean module-relative
// path; "" is the module's root) beneath base, the module as Open returned
// it, the one way both daemons reach what a client names: one openat2
// (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) from the module's descriptor, never
// through a symlink nor outside it (fsx.Root.OpenDir). With create (a
// push), the directories sub names are made first with perm, and created
// says whether sub itself did not exist.
func OpenDir(base *fsx.Root, sub string, create bool, perm uint32) (dir *fsx.Root, created bool, err error) {
	if create {
		if created, err = base.MkdirAll(sub, perm); err != nil {
			return nil, false, err
		}
	}
	dir, err = base.OpenDir(sub)
	return dir, created, err
}
