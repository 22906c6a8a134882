package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// New files are made with their final permission bits, and finishFile
// sets them only when that could not give them: every mode arrives, under
// any umask, and when the umask msync believes in is wrong (as a default
// ACL would make it), the mode is put right after the file is linked in.
func TestNewFileModes(t *testing.T) {
	modes := []uint32{0o644, 0o600, 0o755, 0o444, 0o000, 0o664, 0o666, 0o777, 0o4755, 0o2755, 0o1644, 0o6711}
	for _, tc := range []struct {
		umask uint32
		lie   bool // msync is told the umask is 0
	}{{0o022, false}, {0o077, false}, {0o002, false}, {0o077, true}} {
		t.Run(fmt.Sprintf("umask %#o lie %v", tc.umask, tc.lie), func(t *testing.T) {
			old := unix.Umask(int(tc.umask))
			defer unix.Umask(old)
			if tc.lie {
				processUmask = func() (uint32, bool) { return 0, true }
			} else {
				processUmask = func() (uint32, bool) { return tc.umask, true }
			}
			defer func() { processUmask = defaultUmask }()
			src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
			for _, m := range modes {
				p := filepath.Join(src, fmt.Sprintf("f%04o", m))
				if err := os.WriteFile(p, []byte("data "+p), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := unix.Chmod(p, m); err != nil {
					t.Fatal(err)
				}
			}
			mustRun(t, Options{Kind: Initial, Src: src, Dst: dst, StateDir: st})
			for _, m := range modes {
				var s unix.Stat_t
				p := filepath.Join(dst, fmt.Sprintf("f%04o", m))
				if err := unix.Stat(p, &s); err != nil {
					t.Fatal(err)
				}
				if got := s.Mode & 0o7777; got != m {
					t.Errorf("%s: mode %#o, want %#o", p, got, m)
				}
				if b, err := os.ReadFile(p); err != nil || string(b) != "data "+filepath.Join(src, filepath.Base(p)) {
					t.Errorf("%s: %q, %v", p, b, err)
				}
			}
			// The destination manifest records each copy as it now is.
			for _, e := range readManifest(t, filepath.Join(st, "dst.manifest")) {
				if e.Path == "" {
					continue
				}
				var s unix.Stat_t
				if err := unix.Lstat(filepath.Join(dst, e.Path), &s); err != nil {
					t.Fatal(err)
				}
				if e.Mode != s.Mode&0o7777 || e.Ctime != s.Ctim.Nano() {
					t.Errorf("%s: manifest mode %#o ctime %d, file %#o %d", e.Path, e.Mode, e.Ctime, s.Mode&0o7777, s.Ctim.Nano())
				}
			}
		})
	}
}

var defaultUmask = processUmask
