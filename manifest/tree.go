package manifest

import (
	"errors"
	"fmt"
)

// ErrNotTree says entries received from a peer do not form a tree.
var ErrNotTree = errors.New("the entries do not form a tree")

// TreeCheck refuses entries, in manifest order, that do not form a tree:
// every entry but the root must come inside a directory that came before
// it. Whoever receives a scan from a peer (msync's protocol, rsync's file
// list) checks it so, with one rule: nothing beneath a symlink or any
// other non-directory, nothing outside the root.
type TreeCheck struct {
	dirs    []string
	started bool
}

// Add checks the next entry.
func (t *TreeCheck) Add(e *Entry) error {
	if !t.started {
		t.started = true
		if e.Path != "" || e.Type != TypeDir {
			return fmt.Errorf("%w: the scan does not start with its root directory (got %q)", ErrNotTree, e.Path)
		}
		t.dirs = append(t.dirs, "")
		return nil
	}
	parent := Parent(e.Path)
	for len(t.dirs) > 0 && t.dirs[len(t.dirs)-1] != parent {
		t.dirs = t.dirs[:len(t.dirs)-1]
	}
	if len(t.dirs) == 0 {
		return fmt.Errorf("%w: %q arrives outside any directory sent before it", ErrNotTree, e.Path)
	}
	if e.Type == TypeDir {
		t.dirs = append(t.dirs, e.Path)
	}
	return nil
}
