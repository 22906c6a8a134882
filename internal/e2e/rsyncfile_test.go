package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/msync/msync/internal/rsynctest"
)

// A stock client pushing one file names the destination file as rsync
// does: "rsync file host::m/newname" into a name that does not exist, or is
// a regular file, writes the file newname; into a directory, dir/file; and
// several files into a name that does not exist make a directory of it.
// Through msync's daemon and over a remote shell (msync rsync-server).
func TestStockSingleFilePush(t *testing.T) {
	for _, bin := range rsynctest.Binaries(t) {
		for _, via := range []string{"daemon", "ssh"} {
			t.Run(bin.Name+"/"+via, func(t *testing.T) {
				base := t.TempDir()
				src := base + "/src"
				write(t, src+"/file", "one", 0o640)
				write(t, src+"/other", "two", 0o644)
				must(t, os.MkdirAll(base+"/dst/dir", 0o755))
				write(t, base+"/dst/keep", "kept", 0o644)
				var url string
				var shell []string
				if via == "daemon" {
					url = fmt.Sprintf("rsync://127.0.0.1:%d/data/dst/", startRsyncServe(t, base))
				} else {
					needSSHD(t)
					url = "127.0.0.1:" + base + "/dst/"
					shell = []string{"-e", sshCommand(), "--rsync-path", "MSYNC_E2E_MAIN=1 XDG_STATE_HOME=" + base + "/state " + os.Args[0] + " rsync-server"}
				}
				push := func(to string, from ...string) {
					t.Helper()
					args := append(append(append([]string{"-a"}, shell...), from...), url+to)
					if out, err := exec.Command(bin.Path, args...).CombinedOutput(); err != nil {
						t.Fatalf("rsync %s: %v\n%s", strings.Join(args, " "), err, out)
					}
				}
				regular := func(rel, want string) {
					t.Helper()
					st, err := os.Lstat(base + "/dst/" + rel)
					if err != nil || !st.Mode().IsRegular() {
						t.Fatalf("dst/%s is not a regular file: %v, %v", rel, st, err)
					}
					if b, _ := os.ReadFile(base + "/dst/" + rel); string(b) != want {
						t.Fatalf("dst/%s holds %q, want %q", rel, b, want)
					}
				}
				push("newname", src+"/file")
				regular("newname", "one")
				sameFile := func(rel string) {
					t.Helper()
					args := []string{"-aHAX", "--numeric-ids", "-c", "-n", "-i", src + "/file", base + "/dst/" + rel}
					if out, err := exec.Command(bin.Path, args...).CombinedOutput(); err != nil || len(out) > 0 {
						t.Errorf("rsync %s: %v\n%s", strings.Join(args, " "), err, out)
					}
				}
				sameFile("newname")
				write(t, src+"/file", "one, changed", 0o640)
				push("newname", src+"/file") // now onto a regular file
				regular("newname", "one, changed")
				sameFile("newname")
				push("dir", src+"/file")
				regular("dir/file", "one, changed")
				push("sub/newer", src+"/file")
				regular("sub/newer", "one, changed")
				push("newdir", src+"/file", src+"/other")
				regular("newdir/file", "one, changed")
				regular("newdir/other", "two")
				regular("keep", "kept")
			})
		}
	}
}
