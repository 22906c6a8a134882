package bench

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tree of a bench run is generated again whenever the scale (or seed)
// changes, including back to a scale generated before: an older marker
// must not vouch for the tree another scale left.
func TestSourceTreeFollowsTheScale(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	count := func(scale float64) int64 {
		t.Helper()
		c := &Config{Dir: dir, Seed: 1, Scale: scale, Log: &log}
		src, err := c.sourceTree()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		filepath.WalkDir(src, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return err
		})
		return n
	}
	small := count(0.002)
	large := count(0.006)
	if large <= small {
		t.Fatalf("scale 0.006 gave %d bytes, scale 0.002 %d", large, small)
	}
	if again := count(0.002); again != small {
		t.Fatalf("back at scale 0.002: %d bytes, want %d (the tree of scale 0.006 was reused)", again, small)
	}
	count(0.002)
	if n := strings.Count(log.String(), "generating"); n != 3 {
		t.Fatalf("generated %d times, want 3 (once per change of scale):\n%s", n, log.String())
	}
	// A marker of the old kind (named after a seed and scale) left beside a
	// tree of another scale vouches for nothing.
	if err := os.WriteFile(filepath.Join(dir, "src.seed1.scale0.006"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := count(0.006); got != large {
		t.Fatalf("with an old marker for scale 0.006 beside the 0.002 tree: %d bytes, want %d", got, large)
	}
}
