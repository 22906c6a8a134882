package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)

	if !tuneGC(func(string) string { return "" }) {
		t.Fatal("tuneGC left the collector alone without GOGC in the environment")
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Fatalf("GC percent = %d after tuneGC, want %d", got, gcPercent)
	}

	env := func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	}
	if tuneGC(env) {
		t.Fatal("tuneGC overrode the user's GOGC")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent = %d with GOGC=50 in the environment, want it untouched (100)", got)
	}
}
