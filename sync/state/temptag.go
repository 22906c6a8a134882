package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
)

// tempTagLen is the length of a temp tag: 64 random bits in hex.
const tempTagLen = 16

// TempTag returns the random tag that the temp names of this migration's
// passes carry (".msync.<tag>.<random>.tmp"), made on first use and kept in
// the state directory. A pass treats as its own leftover temp only a name
// with this tag: a user's ".msync.mail.tmp" is an ordinary name, at the
// source and at the destination alike.
func (d *Dir) TempTag() (string, error) {
	p := filepath.Join(d.Path, "temp-tag")
	if tag, err := ReadTempTag(d.Path); err != nil || tag != "" {
		return tag, err
	}
	var r [tempTagLen / 2]byte
	rand.Read(r[:])
	tag := hex.EncodeToString(r[:])
	if err := renameio.WriteFile(p, []byte(tag+"\n"), 0o600, renameio.WithTempDir(d.Path)); err != nil {
		return "", fmt.Errorf("state: %w", err)
	}
	return tag, nil
}

// ReadTempTag returns the temp tag kept in the state directory at path, or
// "" when it has none; unlike TempTag it makes nothing (verify reads it to
// name a killed pass's leftover temps as such).
func ReadTempTag(path string) (string, error) {
	p := filepath.Join(path, "temp-tag")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("state: %w", err)
	}
	tag := strings.TrimSpace(string(b))
	if !validTag(tag) {
		return "", fmt.Errorf("state: %s: not a temp tag (%d bytes)", p, len(b))
	}
	return tag, nil
}

func validTag(s string) bool {
	if len(s) != tempTagLen {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
