package state

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
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
	rel = strings.Trim(path.Clean("/"+rel), "/")
	sum := sha256.Sum256([]byte(module + "\x00" + rel + "\x00" + src))
	last := path.Base("/" + rel)
	if rel == "" {
		last = "_"
	}
	name := sanitize(module) + "." + sanitize(last) + "-" + hex.EncodeToString(sum[:16])
	return filepath.Join(root, name), nil
}
