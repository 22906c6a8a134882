package engine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// realPath returns the absolute path of p with every symlink resolved, as
// the kernel would resolve it, also when p does not exist yet: the deepest
// ancestor of p that exists is resolved and the rest, which a pass makes
// as plain directories, appended. ".." is applied after the symlinks
// before it, never lexically to a name that exists.
func realPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		p = wd + "/" + p
	}
	comps := strings.Split(p, "/")
	for i := len(comps); i > 0; i-- {
		prefix := strings.Join(comps[:i], "/")
		if prefix == "" {
			prefix = "/"
		}
		r, err := filepath.EvalSymlinks(prefix)
		if err == nil {
			return filepath.Join(r, strings.Join(comps[i:], "/")), nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
			return "", err
		}
	}
	return filepath.Clean(p), nil
}

// existingAncestor returns p (absolute, clean, symlinks resolved) or its
// deepest ancestor that exists.
func existingAncestor(p string) string {
	for {
		if _, err := os.Lstat(p); err == nil || p == "/" || p == "." {
			return p
		}
		p = filepath.Dir(p)
	}
}
