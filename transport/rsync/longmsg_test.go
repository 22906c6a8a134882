package rsync

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/internal/testkit"
)

// A module holding names too long to serve: stock rsync prints the
// daemon's error for them and gets the rest (exit 23, a partial
// transfer), rather than aborting the whole pull with "multiplexing
// overflow" on an error message longer than its buffer.
func TestServePullTooLongNamesIsPartial(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "ok"), []byte("served"), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.TooLongPaths(t, root, 3)
	addr, _ := startServer(t, root, Limits{})
	dst := t.TempDir()
	out, err := exec.Command("rsync", "-a", "rsync://"+addr+"/m/", dst+"/").CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 23 {
		t.Errorf("rsync: %v, want exit 23 (partial transfer)\n%s", err, out)
	}
	if n := strings.Count(string(out), "skipping overlong name"); n != 1 {
		t.Errorf("%d overlong names reported, want 1 (what is beneath it goes with it)", n)
	}
	if strings.Contains(string(out), "overflow") || !strings.Contains(string(out), "name too long") {
		t.Errorf("rsync's output does not report the names too long:\n%.2000s", out)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "ok")); err != nil || string(b) != "served" {
		t.Errorf("the rest of the module was not served: %q, %v", b, err)
	}
}

// A sender's error messages while its file list comes are kept, as the
// problems of the scan: a sender sending messages without end (each up to
// 16 MiB in a frame) makes the client keep 1000 at most, each cut, and
// the count of the rest.
func TestSenderMessagesWhileListingBounded(t *testing.T) {
	c := &Client{name: "rsync-test", log: io.Discard, listing: true}
	msg := []byte(strings.Repeat("e", 20<<10) + "\n")
	const sent = 3000
	for range sent {
		if err := c.onMsg(msgError, msg); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.msgs) > maxListMsgs || c.msgsLost != sent-len(c.msgs) {
		t.Errorf("%d messages kept, %d counted lost, of %d", len(c.msgs), c.msgsLost, sent)
	}
	for _, m := range c.msgs {
		if len(m) > maxPeerMsg+16 {
			t.Fatalf("a message of %d bytes kept", len(m))
		}
	}
	if len(c.lastErr) > maxPeerMsg+16 {
		t.Errorf("last error of %d bytes kept", len(c.lastErr))
	}
}
