// Package md4 is the one place msync uses MD4: rsync's strong block and file
// checksums up to protocol 29, which msync must compute to talk to stock rsync
// peers (and for rsync -c's file sums). It is never used for security: rsync
// chose it, the protocol fixes it. Every caller imports this package instead
// of golang.org/x/crypto/md4, so the deprecation is acknowledged once, here.
package md4

//lint:file-ignore SA1019 MD4 is rsync's protocol checksum (protocols 27-29), kept for compatibility with stock rsync, never for security.

import (
	"hash"

	"golang.org/x/crypto/md4"
)

// Size is the length of an MD4 sum in bytes.
const Size = md4.Size

// New returns a new MD4 hash.
func New() hash.Hash { return md4.New() }
