package transport

import (
	"fmt"
	"os"
	"testing"
)

// TestMain keeps the scans a serving end caches ($XDG_CACHE_HOME/msync)
// in a directory of the test run's own, not in the user's cache.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "msync-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
