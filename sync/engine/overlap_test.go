package engine

import (
	"os"
	"path/filepath"
	"testing"
)

// A destination inside the source, or around it, is refused however it is
// named: through a symlink to a directory of the source, with DST not made
// yet, with ".." after a symlink (which the kernel applies to the
// symlink's target), or through a symlink to an ancestor of the source.
func TestCheckPathsThroughSymlinks(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	for _, d := range []string{src + "/sub/deep", base + "/other"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for l, target := range map[string]string{"lnk": src + "/sub", "up": base, "rel": "src/sub/deep"} {
		if err := os.Symlink(target, filepath.Join(base, l)); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(base)
	for _, dst := range []string{
		"src", "src/new", base + "/lnk", base + "/lnk/copy", base + "/lnk/a/b/c",
		base + "/lnk/../copy", "rel/../../x", "lnk/deep/../y", base + "/up", "up", base,
	} {
		if err := checkPaths(src, dst); err == nil {
			t.Errorf("checkPaths(%s, %s) = nil, want the overlap refused", src, dst)
		}
	}
	for _, dst := range []string{base + "/other", base + "/other/x", base + "/lnk/../../copy", "up/other/new", "rel/../../../outside"} {
		if err := checkPaths(src, dst); err != nil {
			t.Errorf("checkPaths(%s, %s): %v, want nil", src, dst, err)
		}
	}
}
