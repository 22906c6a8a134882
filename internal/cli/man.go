package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenManCommand is `msync gen-man DIR` (hidden; `make man` runs it): a
// roff man page for every command of the tree, with its flags, written by
// cobra/doc into DIR as msync.1, msync-catchup.1, msync-bench-run.1, ...
func newGenManCommand(env Env) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write a man page for every msync command into DIR",
		Hidden: true,
		Args:   usageArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := genMan(cmd.Root(), args[0]); err != nil {
				return fatal(err)
			}
			fmt.Fprintf(env.Stderr, "msync: man pages written to %s\n", args[0])
			return nil
		},
	}
}

// genMan writes the man pages of root's tree into dir. The date in the
// pages is today's, or SOURCE_DATE_EPOCH's for a reproducible build.
func genMan(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	var quiet func(*cobra.Command)
	quiet = func(c *cobra.Command) {
		c.DisableAutoGenTag = true
		for _, s := range c.Commands() {
			quiet(s)
		}
	}
	quiet(root)
	if err := doc.GenManTree(root, &doc.GenManHeader{Section: "1", Source: "msync", Manual: "msync manual"}, dir); err != nil {
		return fmt.Errorf("man pages in %s: %w", dir, err)
	}
	return nil
}
