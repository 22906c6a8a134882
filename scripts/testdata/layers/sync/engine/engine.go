// Fixture for scripts/layers_test.sh: a module whose imports break some layering rules.
package engine

import (
	_ "example.com/fix/manifest"
)
