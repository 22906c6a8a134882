package rsync

import (
	"bytes"
	"strings"
	"testing"
)

// What an rsync peer says (its warnings and errors, which name its files)
// is logged escaped: a name's escape sequences never reach the terminal.
func TestPeerMessagesEscaped(t *testing.T) {
	var log bytes.Buffer
	c := &Client{name: "rsync://peer/m", log: &log, listing: true}
	for _, tag := range []byte{msgWarning, msgError, msgInfo} {
		c.onMsg(tag, []byte("file \"a\x1b[2J\x1b]0;owned\x07b\" has vanished\n"))
	}
	if strings.ContainsAny(log.String(), "\x1b\x07") {
		t.Fatalf("a peer's message reached the log raw:\n%q", log.String())
	}
	if n := strings.Count(log.String(), `a\#033[2J\#033]0;owned\#007b`); n != 3 {
		t.Fatalf("want the name escaped in 3 messages, found %d:\n%s", n, log.String())
	}
}
