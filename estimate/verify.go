package estimate

import (
	"time"

	"github.com/msync/msync/record"
)

// VerifySpread is the relative range of a predicted verification: it is
// learned from one run (the last), whose speed the page cache sways.
const VerifySpread = 0.25

// verifyFileBytes is what opening, stat-ing and comparing one entry costs
// a verification, in bytes hashed: its time is one of work (entries x
// this + bytes), so that a small tree's per-file time is not read as a
// slow hash.
const verifyFileBytes = 32 << 10

// Verify predicts a verification of a tree of entries entries and bytes
// file bytes from the last one, v: its speed (bytes hashed per second,
// each side hashing its own copy in parallel) applied to the work now.
// Low and High are VerifySpread around it.
func Verify(v *record.Verify, entries, bytes float64) (mid, low, high time.Duration) {
	s := v.Duration.Seconds()
	then := float64(v.Same+v.Differ+v.Missing+v.Errors+v.Held)*verifyFileBytes + float64(v.Bytes)/2
	if now := entries*verifyFileBytes + bytes; then > 0 && now > 0 {
		s *= now / then
	}
	return secs(s), secs(s * (1 - VerifySpread)), secs(s * (1 + VerifySpread))
}
