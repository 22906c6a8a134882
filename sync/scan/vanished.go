package scan

import "errors"

// ErrVanished marks a Problem that is a path gone while it was scanned (a
// source that changes, exit 24), not a failure to read it (exit 23).
var ErrVanished = errors.New("vanished during the scan")
