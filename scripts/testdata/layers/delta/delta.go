// Fixture for scripts/layers_test.sh: a module whose imports break some layering rules.
package delta

import (
	_ "example.com/fix/sync/engine"
)
