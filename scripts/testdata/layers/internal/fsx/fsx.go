// Fixture for scripts/layers_test.sh: a module whose imports break some layering rules.
package fsx
