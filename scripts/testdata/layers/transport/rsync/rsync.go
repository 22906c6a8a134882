// Fixture for scripts/layers_test.sh: a module whose imports break some layering rules.
package rsync

import (
	_ "example.com/fix/sync/engine"
)
