package tree_test

import (
	"testing"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/sync/tree/sourcetest"
)

// The suite's Source is engine.Source, method for method.
var (
	_ sourcetest.Source = engine.Source(nil)
	_ engine.Source     = sourcetest.Source(nil)
)

// TestLocalConforms runs the source suite on a tree opened by path, whose
// Close only drops cached descriptors (a later fetch opens the tree again).
func TestLocalConforms(t *testing.T) {
	sourcetest.Run(t, sourcetest.Caps{ReusableAfterClose: true}, func(t *testing.T, dir string) (sourcetest.Source, func()) {
		l := tree.NewLocal(dir)
		return l, func() { l.Close() }
	})
}

// TestLocalAtConforms runs it on a tree open beneath a descriptor, as a
// daemon serves one: after Close it is gone.
func TestLocalAtConforms(t *testing.T) {
	sourcetest.Run(t, sourcetest.Caps{}, func(t *testing.T, dir string) (sourcetest.Source, func()) {
		r, err := fsx.OpenRootAs(dir, "module")
		if err != nil {
			t.Fatal(err)
		}
		l := tree.NewLocalAt(r)
		return l, func() { l.Close() }
	})
}
