package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every name msync prints to a terminal is escaped as rsync does (\#ooo):
// a name carrying ESC or a newline can neither drive the terminal nor forge
// a line, in verify's lines and per-directory summary and -i's itemized
// changes; in an error's text, which may span lines, every control
// character but the newline is escaped.
func TestTerminalNamesEscaped(t *testing.T) {
	const evil = "top\x1b[2J\x1b]0;owned\x07\nFAKE line"
	const escaped = `top\#033[2J\#033]0;owned\#007\#012FAKE line`
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	if err := os.MkdirAll(filepath.Join(src, evil), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, evil, "f"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_STATE_HOME", filepath.Join(base, "state"))
	// run runs msync and checks its output shows the name only escaped;
	// lines: an error's text, where the name's newline is kept.
	run := func(want int, lines bool, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, Env{Stdout: &out, Stderr: &errb})
		all := out.String() + errb.String()
		if code != want {
			t.Fatalf("msync %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, all)
		}
		shown := escaped
		if lines {
			shown = strings.ReplaceAll(escaped, `\#012`, "\n")
		}
		if strings.ContainsAny(all, "\x1b\x07") || !lines && strings.Contains(all, "\nFAKE") {
			t.Errorf("msync %s printed a name raw:\n%q", args[0], all)
		}
		if !strings.Contains(all, shown) {
			t.Errorf("msync %s did not print the escaped name %q:\n%q", args[0], shown, all)
		}
		return all
	}
	run(0, false, "initial", "-i", "--no-progress", src, dst)
	if err := os.WriteFile(filepath.Join(dst, evil, "f"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(ExitDiffer, false, "verify", "--no-progress", src, dst)
	if !strings.Contains(out, "\n"+escaped+" ") {
		t.Errorf("verify's summary does not list the escaped top-level name:\n%s", out)
	}
	// An error's text keeps its own lines (a name's newline too), but no
	// control sequence in it reaches the terminal.
	run(ExitFatal, true, "verify", "--no-progress", src+"/"+evil+"/missing", dst)
}
