package state

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/msync/msync/internal/relpath"
)

// ServeRoot is where a daemon keeps the state of the pushes it receives
// when no --state-dir is given: $XDG_STATE_HOME/msync/serve (or
// ~/.local/state/msync/serve) of the daemon's user.
func ServeRoot() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no --state-dir given and no home directory: %w", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "msync", "serve"), nil
}

// ModuleDir is the state directory a daemon keeps, beneath its own root,
// for a push into module's directory rel (relative to the module) from
// src (the source as the client names it). The daemon alone chooses it: a
// client never names a path on the daemon's host. The name is made of
// safe characters only (the module's name and rel's last component, for
// people) and a SHA-256 of all three, so that no two modules, paths or
// sources share one.
func ModuleDir(root, module, rel, src string) (string, error) {
	if root == "" {
		return "", errors.New("daemon state: no state root")
	}
	// Absolute, so that every path beneath it is told apart from the
	// paths of other trees in what a client is told (ForClient).
	root, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("daemon state: %w", err)
	}
	rel = strings.Trim(path.Clean("/"+rel), "/")
	sum := sha256.Sum256([]byte(module + "\x00" + rel + "\x00" + src))
	last := path.Base("/" + rel)
	if rel == "" {
		last = "_"
	}
	name := sanitize(module) + "." + sanitize(last) + "-" + hex.EncodeToString(sum[:16])
	return filepath.Join(root, name), nil
}

// ForClient is err, from a push a daemon received with its state in dir
// (beneath the daemon's state root, ModuleDir), as the daemon's client is
// told it: the state root's host path, or any path beneath or above it,
// is never named (the client cannot reach them, and they are the
// daemon's business). A state of another pair, or one locked by another
// push, is said in the client's terms; the daemon's trees are named by
// their module paths, as the pair records them. errors.Is and errors.As
// still reach err.
func ForClient(err error, dir string) error {
	if err == nil || dir == "" {
		return err
	}
	name := filepath.Base(dir)
	var fe *ForeignError
	var msg string
	switch {
	case errors.As(err, &fe):
		msg = fmt.Sprintf("the daemon's state of this push (%s in its state root): %v: it records\n  %s\nbut this push is\n  %s\n"+
			"its manifests would make this push delete files msync never put there and miss real deletions; "+
			"the daemon's administrator can remove that state to start over",
			name, ErrForeign, fe.Recorded, fe.Current)
	case errors.Is(err, ErrLocked):
		msg = fmt.Sprintf("the daemon's state of this push (%s in its state root): %v: another push from this source into this path is running; wait for it to end", name, ErrLocked)
	default:
		msg = redactStatePaths(err, filepath.Dir(dir))
	}
	return &clientError{msg: msg, err: err}
}

type clientError struct {
	msg string
	err error
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return e.err }

// redactStatePaths is err's message with every path that is the state
// root, beneath it or above it written relative to it ("<state root>/…").
func redactStatePaths(err error, root string) string {
	msg := err.Error()
	var paths []string
	var pe *os.PathError
	if errors.As(err, &pe) {
		paths = append(paths, pe.Path)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		paths = append(paths, le.Old, le.New)
	}
	if root != "/" {
		paths = append(paths, root)
	}
	// The longest first: a path above the root is part of the root's.
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	for _, p := range paths {
		if p == "/" || !filepath.IsAbs(p) {
			continue
		}
		p = filepath.Clean(p)
		switch {
		case relpath.Within(root, p):
			// The root, or a directory on the way to it.
			msg = strings.ReplaceAll(msg, p, "<state root>")
		case relpath.Within(p, root):
			rel, _ := filepath.Rel(root, p)
			msg = strings.ReplaceAll(msg, p, "<state root>/"+filepath.ToSlash(rel))
		}
	}
	return msg
}
