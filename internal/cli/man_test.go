package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestGenMan runs `msync gen-man DIR` and checks that every command a user
// can run has its page, naming each of its flags, and that hidden commands
// have none.
func TestGenMan(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if rc := Run(context.Background(), []string{"gen-man", dir}, Env{Stdout: &stdout, Stderr: &stderr}); rc != ExitOK {
		t.Fatalf("gen-man exited %d: %s", rc, stderr.String())
	}
	root := newRootCommand(Env{Stdout: &stdout, Stderr: &stderr})
	pages := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		page := filepath.Join(dir, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		b, err := os.ReadFile(page)
		if !c.IsAvailableCommand() && c != root {
			if err == nil {
				t.Errorf("%s: hidden command %q has a man page", page, c.CommandPath())
			}
			return
		}
		if err != nil {
			t.Errorf("%q has no man page: %v", c.CommandPath(), err)
			return
		}
		pages++
		text := strings.ReplaceAll(string(b), `\-`, "-") // md2man may escape hyphens
		if !strings.Contains(text, `.TH "`+strings.ToUpper(strings.ReplaceAll(c.CommandPath(), " ", "-"))+`" "1" `) {
			t.Errorf("%s: no .TH header for %q", page, c.CommandPath())
		}
		check := func(f *pflag.Flag) {
			if f.Hidden || f.Deprecated != "" {
				return
			}
			if !strings.Contains(text, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s: flag --%s of %q missing", page, f.Name, c.CommandPath())
			}
		}
		c.NonInheritedFlags().VisitAll(check)
		c.InheritedFlags().VisitAll(check)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if pages < 15 {
		t.Errorf("%d man pages checked, want every command's (at least 15)", pages)
	}
	if _, err := os.Stat(filepath.Join(dir, "msync-gen-man.1")); err == nil {
		t.Errorf("the hidden gen-man command has a man page")
	}
}
