package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/msync/msync/verify"
)

// The same seed and scale give the same tree, and the same seed and round
// the same mutation: judged by msync verify (content, modes, mtimes, owners,
// symlink targets and hard link structure).
func TestGenAndMutateAreDeterministic(t *testing.T) {
	a, b := t.TempDir()+"/a", t.TempDir()+"/b"
	same := func(stage string) {
		t.Helper()
		rep, err := verify.Run(context.Background(), verify.Options{Src: a, Dst: b, Owners: true})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Identical {
			var s strings.Builder
			verify.WriteText(&s, rep)
			t.Fatalf("%s: trees differ:\n%s", stage, s.String())
		}
	}
	for _, d := range []string{a, b} {
		if _, err := Gen(d, 42, 0.01); err != nil {
			t.Fatal(err)
		}
	}
	same("gen")
	for round := 1; round <= 2; round++ {
		for _, d := range []string{a, b} {
			if _, err := Mutate(d, 42, round); err != nil {
				t.Fatal(err)
			}
		}
		same("mutate")
	}
	// A different seed gives a different tree (the check above can fail).
	c := t.TempDir() + "/c"
	if _, err := Gen(c, 43, 0.01); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Run(context.Background(), verify.Options{Src: a, Dst: c})
	if err != nil || rep.Identical {
		t.Fatalf("seed 43 made the same tree as seed 42 (err %v)", err)
	}
}
