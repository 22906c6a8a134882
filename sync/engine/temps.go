package engine

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// msync treats as its own temp only a name it can prove it made: temp
// files carry the migration's temp tag (state.TempTag), kept in the state
// directory, and only names with that tag are msync's leftovers. A user's
// ".msync.mail.tmp" is copied like any name, and kept at the destination.

// Temp names are ".msync.<tag>.<random>.tmp", tag being the migration's
// (state.TempTag).
const (
	tempPrefix = ".msync."
	tempSuffix = ".tmp"
)

// tempName returns a new temp name of this migration.
func (d *dest) tempName() string {
	var b [8]byte
	rand.Read(b[:])
	return tempPrefix + d.tag + "." + hex.EncodeToString(b[:]) + tempSuffix
}

// OwnTemp returns whether a name (the last element of a path) is a temp
// name with tag (state.TempTag): one a pass of that migration made.
func OwnTemp(tag string) func(name string) bool { return ownTemp(tag) }

// ownTemp returns whether a name is a temp name with tag: one msync made
// for this migration, never a user's.
func ownTemp(tag string) func(name string) bool {
	pre := tempPrefix + tag + "."
	return func(name string) bool {
		return len(name) > len(pre)+len(tempSuffix) && strings.HasPrefix(name, pre) && strings.HasSuffix(name, tempSuffix)
	}
}

// removeTemps removes the leftover temps of killed passes directly in a
// destination directory that the pass keeps without a source directory
// (one a killed pass wrote into before the source removed it): they carry
// the migration's tag, so they are msync's even there.
func (ap *applier) removeTemps(dir string) {
	if ap.dstScan == nil || ap.o.DryRun {
		return
	}
	for _, t := range ap.dstScan.TakeTemps(dir) {
		if err := removeAll(ap.dirs, t); err == nil {
			ap.t.tempRemoved()
		}
	}
}
