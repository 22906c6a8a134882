package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A stock rsync client killed in the middle of a push must not take
// `msync serve --rsync` down: the daemon keeps serving and the next push
// converges. Killing the client while a file larger than a reply's buffer
// was arriving used to close a reply's channel twice (panic).
func TestStockClientKilledMidPushDaemonSurvives(t *testing.T) {
	rs := needTool(t, "rsync")
	base := t.TempDir()
	src, mod := base+"/src", base+"/mod"
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.MkdirAll(mod, 0o755))
	for i := range 500 {
		write(t, fmt.Sprintf("%s/s%d", src, i), fmt.Sprint(i), 0o644)
	}
	must(t, os.Link(src+"/s1", src+"/hl"))
	big := make([]byte, 2<<20)
	for i := range 30 {
		rand.Read(big)
		must(t, os.WriteFile(fmt.Sprintf("%s/big%d", src, i), big, 0o644))
	}
	addr, stderr, _, done := startServe(t, "true", "--rsync", "--module", "m="+mod, "--state-dir", base+"/state")
	url := "rsync://" + addr + "/m/"
	for i, d := range []time.Duration{50, 100, 100, 150, 200, 300, 100, 100} {
		ents, _ := os.ReadDir(mod)
		for _, e := range ents {
			os.RemoveAll(mod + "/" + e.Name())
		}
		cmd := exec.Command(rs, "-aH", src+"/", url)
		must(t, cmd.Start())
		time.Sleep(d * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		time.Sleep(300 * time.Millisecond)
		select {
		case <-done:
			out := stderr.String()
			if j := strings.Index(out, "panic"); j >= 0 {
				out = out[j:min(len(out), j+600)]
			}
			t.Fatalf("the daemon died after client kill #%d:\n%s", i+1, out)
		default:
		}
	}
	if out, err := exec.Command(rs, "-aH", "--delete", src+"/", url).CombinedOutput(); err != nil {
		t.Fatalf("push after killed clients: %v\n%s", err, out)
	}
	mustRsyncClean(t, src, mod)
}
