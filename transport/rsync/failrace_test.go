package rsync

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A push into serve --rsync that fills the destination's disk: the README
// promises that the first ENOSPC ends the pass naming the file. A file
// large enough to stream (over replyBuffer) fails instead with the error of
// the pipe its worker closed when the write failed ("read/write on closed
// pipe"): fetchCopy returns the reply's failure before its own ENOSPC, so
// the full disk is neither named nor stops the pass. Run with -race, it
// also covers the session's failure path, which writes the error and
// drains the connection while the push's reader may still run.
func TestServePushIntoFullDiskNamesENOSPC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to mount a small tmpfs")
	}
	dst := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", dst).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dst).Run() })
	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for i := range 8 {
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i))), big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr, log := startServer(t, dst, Limits{})
	out, err := exec.Command("rsync", "-rlt", src+"/", "rsync://"+addr+"/m/").CombinedOutput()
	if err == nil {
		t.Fatalf("the push into a full disk succeeded:\n%s", out)
	}
	if !bytes.Contains(out, []byte("no space left on device")) || bytes.Contains(out, []byte("closed pipe")) {
		t.Fatalf("a full disk not named as the cause:\n%s\ndaemon: %s", out, log.String())
	}
}
