package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msync/msync/bench"
)

// killSSHAt runs msync with args (its -e wrapper records the ssh pid in
// pidfile) and SIGKILLs the ssh process after delay. It returns whether ssh
// was killed before msync finished, and msync's exit code.
func killSSHAt(t *testing.T, delay time.Duration, pidfile string, args ...string) (bool, int) {
	t.Helper()
	os.Remove(pidfile)
	cmd, done := startMsync(t, args...)
	killed := false
	select {
	case <-done:
	case <-time.After(delay):
		b, _ := os.ReadFile(pidfile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			killed = syscall.Kill(pid, syscall.SIGKILL) == nil
		}
		<-done
	}
	return killed, cmd.ProcessState.ExitCode()
}

// A broken connection (ssh killed mid-pass), pulling and pushing, leaves
// DST consistent: nothing under a real name that was never at SRC, state
// readable; the next pass completes it exactly.
func TestSSHKilledMidPass(t *testing.T) {
	flags := needSSHD(t)
	needTool(t, "rsync")
	for _, dir := range []string{"pull", "push"} {
		t.Run(dir, func(t *testing.T) {
			base := t.TempDir()
			src, dst, st, pidfile := base+"/src", base+"/dst", base+"/state", base+"/ssh.pid"
			if _, err := bench.Gen(src, 21, 0.03); err != nil {
				t.Fatal(err)
			}
			allowed := contents{}
			recordContents(t, src, allowed)
			rsh := "sh -c 'echo $$ > " + pidfile + "; exec \"$@\"' sh " + sshCommand()
			args := []string{"--state", st, "-e", rsh, flags[2], flags[3], "--fsync=none"}
			from, to := "127.0.0.1:"+src, dst
			if dir == "push" {
				from, to = src, "127.0.0.1:"+dst
			}
			kills := 0
			for i, d := range []time.Duration{700 * time.Millisecond, 1000 * time.Millisecond, 1300 * time.Millisecond, 1700 * time.Millisecond} {
				kind := "initial"
				if i%2 == 1 {
					kind = "catchup"
				}
				killed, code := killSSHAt(t, d, pidfile, append([]string{kind, from, to}, args...)...)
				if killed {
					kills++
					// Exit 0 is right only when the pass had ended before
					// the kill landed (its result was in; ssh was closing):
					// then DST is complete.
					if code == 0 {
						if d := rsyncDiff(t, src, dst); d != "" {
							t.Errorf("msync exited 0 although its connection was killed and DST is incomplete:\n%s", d)
						} else {
							t.Logf("kill %d landed after the pass ended (exit 0, DST complete)", i)
						}
					}
				}
				time.Sleep(200 * time.Millisecond) // the far side notices and exits
				checkNothingInvented(t, dst, st, allowed)
			}
			if kills == 0 {
				t.Fatal("no connection was killed before the pass finished: kill points too late for this machine")
			}
			if code, _, e := msync(append([]string{"catchup", from, to}, args...)...); code != 0 {
				t.Fatalf("catchup after %d killed connections: exit %d: %s", kills, code, e)
			}
			if n := checkNothingInvented(t, dst, st, allowed); n != 0 {
				t.Errorf("%d temp files left after a completed pass", n)
			}
			mustRsyncClean(t, src, dst)
			mustVerify(t, src, dst)
			t.Logf("%s: %d connections killed mid-pass, nothing invented, next pass completed", dir, kills)
		})
	}
}
