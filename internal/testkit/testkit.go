// Package testkit holds what several packages' tests need, for tests only:
// a cache directory of the test binary's own, and trees with names too
// long to serve.
package testkit

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// RunWithOwnCache points XDG_CACHE_HOME at a fresh directory, runs the
// tests, removes the directory and returns m.Run's exit code (2 when the
// directory could not be made): the scans a serving end caches
// ($XDG_CACHE_HOME/msync) stay out of the user's cache. A TestMain calls
// it and exits with its code.
func RunWithOwnCache(m *testing.M) int {
	dir, err := os.MkdirTemp("", "msync-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_CACHE_HOME", dir)
	return m.Run()
}

// TooLongPaths makes, beneath dir, a chain of directories of 255-byte
// names as deep as a valid path allows, and n empty files inside the
// deepest whose paths are too long for a manifest (about 32 KiB each).
// Names are made beneath descriptors: the paths are too long for the
// kernel to take whole.
func TooLongPaths(t *testing.T, dir string, n int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", manifest.MaxNameLen)
	for depth := 1; depth*(len(name)+1)-1 <= manifest.MaxPathLen; depth++ {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	defer unix.Close(fd)
	for i := range n {
		leaf := fmt.Sprintf("%s%04d", strings.Repeat("f", manifest.MaxNameLen-4), i)
		f, err := unix.Openat(fd, leaf, unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(f)
	}
}
