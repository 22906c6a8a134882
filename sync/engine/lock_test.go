package engine

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/msync/msync/internal/fsx"
)

// A pass into a directory inside or around a running pass's destination
// is refused, naming the busy directory (for a daemon's open DST, by its
// name and "..", not by a host path); passes into siblings both run.
func TestLockDestNested(t *testing.T) {
	base := t.TempDir()
	d := base + "/d"
	for _, p := range []string{d + "/a/deep", d + "/b"} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lock := func(dst string) (func(), error) { return lockDest(dst, nil, io.Discard) }
	busy := func(what string, err error, name string) {
		t.Helper()
		if !errors.Is(err, ErrDestBusy) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want %v naming %s", what, err, ErrDestBusy, name)
		}
	}

	unlock, err := lock(d)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lock(d + "/a/deep")
	busy("a pass into d/a/deep while d is written", err, d)
	root, err := fsx.OpenRootAs(d+"/a/deep", "m/x")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = lockDest("m/x", root, io.Discard)
	busy("a daemon's pass into d/a/deep while d is written", err, "m/x/../..")
	if err != nil && strings.Contains(err.Error(), base) {
		t.Errorf("a daemon's error shows a host path: %v", err)
	}
	unlock()

	unlockA, err := lock(d + "/a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA()
	_, err = lock(d)
	busy("a pass into d while d/a is written", err, d)
	_, err = lock(base)
	busy("a pass into d/.. while d/a is written", err, base)
	unlockB, err := lock(d + "/b")
	if err != nil {
		t.Fatalf("a pass into d/b while d/a is written: %v", err)
	}
	unlockB()
	_, err = lock(d + "/a/deep")
	busy("a pass into d/a/deep while d/a is written", err, d+"/a")
}
