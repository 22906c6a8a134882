// Package testcache gives a test binary a cache directory of its own, for
// tests only: the scans a serving end caches ($XDG_CACHE_HOME/msync) then
// stay out of the user's cache and go with the run.
package testcache

import (
	"fmt"
	"os"
	"testing"
)

// Run points XDG_CACHE_HOME at a fresh directory, runs the tests, removes
// the directory and returns m.Run's exit code (2 when the directory could
// not be made). A TestMain calls it and exits with its code.
func Run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "msync-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_CACHE_HOME", dir)
	return m.Run()
}
