package cli

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// versionLine says which msync this is, from the build information the Go
// toolchain embeds: the module version ("(devel)" for a build from a
// checkout), the VCS revision and whether the work tree had uncommitted
// changes (vcs.modified), and the Go version. `msync version` and
// `msync --version` print it.
func versionLine(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "msync (unknown version: no build information)"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	rev, modified := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "msync %s", version)
	if rev == "" {
		b.WriteString(", revision unknown")
	} else {
		fmt.Fprintf(&b, ", revision %s", rev)
		if modified == "true" {
			b.WriteString(" (modified)")
		}
	}
	fmt.Fprintf(&b, ", %s", bi.GoVersion)
	return b.String()
}

func buildVersion() string { return versionLine(debug.ReadBuildInfo()) }

// setVersion makes `msync --version` print what `msync version` does. The
// flag is declared here, without cobra's -v shorthand: -v is rsync's
// --verbose on the subcommands, and `msync -v` should not mean otherwise.
func setVersion(root *cobra.Command) {
	root.Version = buildVersion()
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().Bool("version", false, "print msync's version and exit")
}

func newVersionCommand(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print msync's version: module version, VCS revision, modified work tree, Go version",
		Args:  usageArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(env.Stdout, buildVersion())
			return nil
		},
	}
}
