package cli

import (
	"fmt"
	"github.com/msync/msync/migrate"
	"io"
	"os"
	"time"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport"
	"github.com/msync/msync/verify"
	"github.com/spf13/cobra"
)

func newVerifyCommand(env Env) *cobra.Command {
	f := &passFlags{}
	var all bool
	var workers int
	c := &cobra.Command{
		Use:   "verify [flags] SRC DST | --plan FILE [--only NAME]...",
		Short: "Hash every file on both sides and report each difference",
		Long: `Scan both trees and read every regular file on its own side (both sides in parallel),
then compare content (xxhash64), type, mode, mtime, symlink targets, hard link structure,
owners (as root or with --owners), extended attributes and POSIX ACLs. Files under 64 KiB are read
through io_uring where the kernel allows it (open, read and close of a directory's run of
files in one system call); MSYNC_URING=off in the environment reads them one call at a time.

Each path that does not match is printed with a code like rclone check --combined:
  * path (what)  differs: content, type, mode, owner, mtime, target, xattr, acl, links, device
  - path         missing at DST
  + path         extra at DST
  ! path: error  could not be read
  ~ path: why    left behind by the dataset's class (--plan), not a difference
--all also prints "= path" for every match. A summary per top-level directory follows,
then what was not compared and why (owners when not root, trusted./security. xattrs when
not root, xattrs and ACLs against stock rsync or with --no-xattrs, ACLs on a file system
without them); the verdict then reads "IDENTICAL in what was compared".
The outcome is recorded in the pair's state directory (when it is on this host) for
msync status and msync report.
Exit status: 0 only when the trees are identical in everything compared, 1 when anything
differs, 2 on error.` + endpointHelp,
		Args: planArgs(&f.plan, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := filter.New(f.excludes); err != nil {
				return &exitError{code: exitCodeUsage, err: err}
			}
			if f.plan.path != "" {
				return runPlanVerify(cmd, env, f, all, workers)
			}
			start := time.Now()
			rep, err := migrate.Verify(cmd.Context(), args[0], args[1], f.verifyOptions(env, all, workers))
			if err != nil {
				return fatal(fmt.Errorf("verify: %w", err))
			}
			if sd := migrate.VerifyState(f.state, args[0], args[1]); sd != "" {
				if err := migrate.RecordVerify(sd, rep, start); err != nil {
					fmt.Fprintf(env.Stderr, "msync: verify: could not record the result: %v\n", err)
				}
			}
			if f.json {
				verify.WriteJSON(env.Stdout, rep)
			} else if !f.quiet {
				verify.WriteText(env.Stdout, rep)
			}
			if !rep.Identical {
				return &exitError{code: ExitDiffer}
			}
			return nil
		},
	}
	addPlanFlags(c, &f.plan)
	addCommonFlags(c, f)
	addRemoteFlags(c, &f.remote)
	c.Flags().BoolVar(&all, "all", false, "also print \"=\" lines for matching paths")
	c.Flags().IntVar(&workers, "workers", 2, "files hashed in parallel on each side")
	return c
}

func newManifestCommand(env Env) *cobra.Command {
	var out, format string
	var excludes []string
	var noXattrs, noHash bool
	var rf migrate.Remote
	c := &cobra.Command{
		Use:   "manifest [flags] DIR",
		Short: "Write a manifest of DIR (msync, BSD mtree or JSON lines)",
		Long: `Scan DIR and write its manifest to FILE (or stdout).

Formats:
  msync  msync's binary manifest (versioned, zstd, checksummed), with content hashes
  mtree  BSD mtree(5) spec: check a tree with "mtree -f FILE -p DIR"
  json   one JSON object per line, with content hashes

DIR may be remote ([user@]host:path or msync://host/module/path): it is then scanned and
hashed on its own host and only the manifest crosses the network.`,
		Args: usageArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := filter.New(excludes); err != nil {
				return &exitError{code: exitCodeUsage, err: err}
			}
			var write func(io.Writer, manifest.Iterator) error
			hash := !noHash
			switch format {
			case "msync":
				write = func(w io.Writer, it manifest.Iterator) error {
					mw, err := manifest.NewWriter(w)
					if err != nil {
						return err
					}
					for {
						e, err := it.Next()
						if err == io.EOF {
							return mw.Close()
						}
						if err != nil {
							return err
						}
						if err := mw.Add(e); err != nil {
							return err
						}
					}
				}
			case "mtree":
				write, hash = manifest.WriteMtree, false
			case "json":
				write = manifest.WriteJSON
			default:
				return &exitError{code: exitCodeUsage, err: fmt.Errorf("--format=%q: want msync, mtree or json", format)}
			}
			ns := []string(nil)
			if !noXattrs {
				ns = []string{"user."}
			}
			ep, err := transport.Parse(args[0])
			if err != nil {
				return &exitError{code: exitCodeUsage, err: err}
			}
			side, closeSide, err := rf.OpenSide(cmd.Context(), env.Stderr, ep)
			if err != nil {
				return fatal(err)
			}
			defer closeSide()
			sc, err := side.Scan(cmd.Context(), tree.ScanConfig{Exclude: excludes, Xattrs: ns, Hash: hash})
			if err != nil {
				return fatal(err)
			}
			defer sc.Close()
			var it manifest.Iterator = sc
			if out == "" || out == "-" {
				if err := write(env.Stdout, it); err != nil {
					return fatal(err)
				}
			} else {
				if err := writeFileAtomic(out, func(w io.Writer) error { return write(w, it) }); err != nil {
					return fatal(err)
				}
			}
			code := ExitOK
			for _, p := range sc.Problems() {
				fmt.Fprintf(env.Stderr, "msync: %s\n", manifest.EscapeLines(p.Err.Error()))
				code = ExitPartial
			}
			if code != ExitOK {
				return &exitError{code: code}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write to FILE (atomically) instead of stdout")
	c.Flags().StringVar(&format, "format", "msync", "msync, mtree or json")
	c.Flags().StringArrayVar(&excludes, "exclude", nil, "exclude paths matching this rsync-style pattern (repeatable)")
	c.Flags().BoolVar(&noXattrs, "no-xattrs", false, "leave out extended attributes")
	c.Flags().BoolVar(&noHash, "no-hash", false, "do not read files to hash them (msync and json formats)")
	addRemoteFlags(c, &rf)
	return c
}

func writeFileAtomic(path string, fn func(io.Writer) error) error {
	tmp, err := os.CreateTemp(dirOf(path), ".msync-manifest-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			if i == 0 {
				return "/"
			}
			return p[:i]
		}
	}
	return "."
}

// verifyOptions are the verification's options for the library.
func (f *passFlags) verifyOptions(env Env, all bool, workers int) migrate.VerifyOptions {
	return migrate.VerifyOptions{State: f.state, Exclude: f.excludes, NoXattrs: f.noXattrs, Owners: f.ownersEnabled(),
		All: all, Workers: workers, Remote: f.remote, Stderr: env.Stderr}
}
