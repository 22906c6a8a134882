package transport

import (
	"os"
	"testing"

	"github.com/msync/msync/internal/testkit"
)

// TestMain keeps the scans a serving end caches in the run's own directory.
func TestMain(m *testing.M) { os.Exit(testkit.RunWithOwnCache(m)) }
