// Package rsynctest finds the stock rsync binaries msync is tested against
// and runs them as daemons on loopback, for tests only.
//
// The matrix is Debian's current rsync (3.5.x, on PATH) and Debian's
// 3.2.7-1+deb12u6 unpacked beside it ($RSYNC_327, by default under
// /opt/rsync-3.2.7-1+deb12u6; scripts/deps.sh puts it there).
package rsynctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Binary is one stock rsync.
type Binary struct {
	Name string // "3.5.0"
	Path string
}

// Default327 is where scripts/deps.sh unpacks rsync 3.2.7-1+deb12u6.
const Default327 = "/opt/rsync-3.2.7-1+deb12u6/usr/bin/rsync"

// Binaries returns the stock rsyncs of the interop matrix. Under CI a
// missing one fails the test; elsewhere the test is skipped, loudly.
func Binaries(t testing.TB) []Binary {
	t.Helper()
	var out []Binary
	var missing []string
	if p, err := exec.LookPath("rsync"); err == nil && version(p) != "" {
		out = append(out, Binary{Name: version(p), Path: p})
	} else {
		missing = append(missing, "rsync on PATH (apt-get install rsync)")
	}
	p327 := os.Getenv("RSYNC_327")
	if p327 == "" {
		p327 = Default327
	}
	if v := version(p327); strings.HasPrefix(v, "3.2.7") {
		out = append(out, Binary{Name: v, Path: p327})
	} else {
		missing = append(missing, p327+" (scripts/deps.sh unpacks rsync 3.2.7-1+deb12u6 there)")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("missing stock rsync: %s", strings.Join(missing, "; "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIP: " + msg)
	}
	return out
}

// version returns the version rsync at path reports ("3.5.0"), or "".
func version(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "version" {
			return f[i+1]
		}
	}
	return ""
}

// Module is one module of a daemon.
type Module struct {
	Name, Path string
	ReadOnly   bool
	// User and Group, when set, are the daemon's uid and gid for the
	// module's transfers (as root), e.g. "nobody" and "nogroup" to have
	// stock rsync meet a file it cannot read.
	User, Group string
}

// StartDaemon runs bin as an rsync daemon on 127.0.0.1 serving modules and
// returns its port. The daemon stops when the test ends.
func StartDaemon(t testing.TB, bin string, mods ...Module) int {
	t.Helper()
	dir := t.TempDir()
	var conf strings.Builder
	// As root the daemon chroots into the module, which keeps absolute and
	// dangling symlinks as they are; without a chroot it would munge or
	// sanitize them.
	if os.Geteuid() == 0 {
		conf.WriteString("use chroot = yes\nuid = root\ngid = root\n")
	} else {
		conf.WriteString("use chroot = no\nmunge symlinks = no\n")
	}
	for _, m := range mods {
		fmt.Fprintf(&conf, "[%s]\n\tpath = %s\n\tread only = %v\n", m.Name, m.Path, m.ReadOnly)
		if m.User != "" {
			fmt.Fprintf(&conf, "\tuid = %s\n\tgid = %s\n", m.User, m.Group)
		}
	}
	cf := filepath.Join(dir, "rsyncd.conf")
	if err := os.WriteFile(cf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cmd := exec.Command(bin, "--daemon", "--no-detach", "--config="+cf, "--address=127.0.0.1",
			"--port="+strconv.Itoa(port), "--log-file="+filepath.Join(dir, "rsyncd.log"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s --daemon: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
				c.Close()
				t.Cleanup(func() { cmd.Process.Kill(); <-exited })
				return port
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-exited
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "rsyncd.log"))
			t.Fatalf("%s --daemon did not listen on port %d:\n%s", bin, port, log)
		}
	}
}
