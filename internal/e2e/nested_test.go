package e2e

import (
	"os"
	"strings"
	"testing"
)

// The reverse of TestNestedPassIntoRunningDestRefused: while a pass into
// dst/sub runs, a pass into dst (which would write dst/sub too) is
// refused, and one into a sibling, dst/other, runs.
func TestPassAroundRunningDestRefused(t *testing.T) {
	base := t.TempDir()
	srcA, srcB, dst := base+"/srcA", base+"/srcB", base+"/dst"
	write(t, srcA+"/f", "from A", 0o644)
	write(t, srcB+"/sub/g", "from B", 0o644)
	must(t, os.MkdirAll(dst+"/sub", 0o755))
	must(t, os.MkdirAll(dst+"/other", 0o755))
	held, release := holdFirstPass(t)
	first := make(chan int, 1)
	go func() {
		code, _, _ := msync("initial", srcA, dst+"/sub", "--state", base+"/stateA")
		first <- code
	}()
	<-held
	code, _, e := msync("initial", srcB, dst, "--state", base+"/stateB")
	sib, _, se := msync("initial", srcA, dst+"/other", "--state", base+"/stateC")
	release()
	if c := <-first; c != 0 {
		t.Errorf("the pass into %s/sub: exit %d", dst, c)
	}
	if code != 2 || !strings.Contains(e, "another msync pass is writing") {
		t.Errorf("a pass into %s while a pass into %s/sub runs: exit %d, want 2:\n%s", dst, dst, code, e)
	}
	if sib != 0 {
		t.Errorf("a pass into %s/other while a pass into %s/sub runs: exit %d, want 0:\n%s", dst, dst, sib, se)
	}
	if _, err := os.Stat(dst + "/sub/sub/g"); err == nil {
		t.Errorf("the refused pass wrote into %s/sub", dst)
	}
}
