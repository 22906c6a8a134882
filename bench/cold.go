package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// dropCachesFile is where the kernel takes the order to drop its clean
// caches: "3" drops the page cache and the dentries and inodes.
const dropCachesFile = "/proc/sys/vm/drop_caches"

// dropKernelCaches writes any dirty data, then empties the kernel's page,
// dentry and inode caches. It needs root.
func dropKernelCaches() error {
	settle()
	if err := os.WriteFile(dropCachesFile, []byte("3\n"), 0); err != nil {
		return fmt.Errorf("--drop-caches needs to write %s (root, with /proc/sys writable): %w", dropCachesFile, err)
	}
	return nil
}

// trees names what one timed command works on: read are the trees it
// reads files of (read back to their last byte), walk those whose
// metadata only it looks at (listed and lstat'ed).
type trees struct{ read, walk []string }

// reads is trees with every dir read.
func reads(dirs ...string) trees { return trees{read: dirs} }

// and adds dirs to walk.
func (t trees) and(dirs ...string) trees {
	t.walk = append(append([]string(nil), t.walk...), dirs...)
	return t
}

// walks is trees with every dir walked.
func walks(dirs ...string) trees { return trees{walk: dirs} }

// coldStart puts the machine in the same state before every timed command
// when c.DropCaches is set: the kernel's caches emptied, then only t read
// back. Without it, whatever earlier commands left in memory stays, and
// the command that has to evict gigabytes of earlier copies to make room
// pays for that: in a scale-1.0 run, rsync -aH took 11.4 s going second
// and 16.4 s going first. Reading back is not timed.
func (c *Config) coldStart(ctx context.Context, t trees) error {
	if !c.DropCaches {
		return nil
	}
	drop := c.drop
	if drop == nil {
		drop = dropKernelCaches
	}
	if err := drop(); err != nil {
		return err
	}
	// The programs too: each would otherwise start by paging its binary
	// and libraries in from disk, msync's larger binary more so.
	for _, p := range c.programs {
		if err := readFile(p); err != nil {
			return fmt.Errorf("reading back %s: %w", p, err)
		}
	}
	if len(t.read) > 0 {
		if _, err := Floor(ctx, 4, true, false, t.read...); err != nil {
			return fmt.Errorf("reading back %v: %w", t.read, err)
		}
	}
	if len(t.walk) > 0 {
		if _, err := Floor(ctx, 4, false, false, t.walk...); err != nil {
			return fmt.Errorf("walking back %v: %w", t.walk, err)
		}
	}
	return nil
}

// timedRun runs a timed command after coldStart.
func (c *Config) timedRun(ctx context.Context, t trees, name string, args ...string) (sample, error) {
	if err := c.coldStart(ctx, t); err != nil {
		return sample{}, err
	}
	return c.run(ctx, name, args...)
}

// programFiles returns the files the named programs run from: each one's
// executable (looked up in PATH) and the shared libraries ldd lists for it.
// A program that is not found is left out: running it fails later, with
// the reason.
func programFiles(names ...string) []string {
	var files []string
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		files = append(files, p)
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			continue // static, or no ldd: the executable is all there is
		}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	slices.Sort(files)
	return slices.Compact(files)
}

// readFile reads the file at p to its end.
func readFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
