package state

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
)

// The manifests of a state directory hold the xattrs of the namespaces and
// names (fsx.XattrNamespaces) the pass that wrote them read. A scan reuses
// an unchanged object's xattrs from them, which is right only when it reads
// the same ones: a pass run as another user, with --no-xattrs, or by an
// msync that copies more (the POSIX ACLs) must read them again.

func (d *Dir) xattrsPath() string { return filepath.Join(d.Path, "xattrs") }

// XattrsMatch reports whether the manifests of d were written by a pass
// that read the xattrs ns: false when another set was recorded, or none
// (state written before msync recorded it).
func (d *Dir) XattrsMatch(ns []string) bool {
	b, err := os.ReadFile(d.xattrsPath())
	if err != nil {
		return false
	}
	return slices.Equal(strings.Fields(string(b)), ns)
}

// ForgetXattrs removes the record: done before manifests that hold other
// xattrs are committed, so that no stale record outlives them.
func (d *Dir) ForgetXattrs() error {
	if err := os.Remove(d.xattrsPath()); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// SetXattrs records that the manifests just committed hold the xattrs ns.
func (d *Dir) SetXattrs(ns []string) error {
	if d.XattrsMatch(ns) {
		return nil
	}
	b := []byte(strings.Join(ns, "\n") + "\n")
	if err := renameio.WriteFile(d.xattrsPath(), b, 0o600, renameio.WithTempDir(d.Path)); err != nil {
		return fmt.Errorf("state: record xattr namespaces: %w", err)
	}
	return nil
}

// RecordedXattrs returns the xattr namespaces the manifests in the state
// directory dir were written with, read without taking its lock; nil when
// none were recorded.
func RecordedXattrs(dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, "xattrs"))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}
