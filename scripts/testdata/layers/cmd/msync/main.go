// Fixture for scripts/layers_test.sh: a module whose imports break some layering rules.
package main

import (
	_ "example.com/fix/internal/cli"
)

func main() {}
