package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sshdpkg "github.com/msync/msync/internal/sshd"
	"github.com/msync/msync/transport"
)

// A real OpenSSH server on 127.0.0.1 (internal/sshd), started once per
// test binary, stopped by TestMain.
var sshd struct {
	once sync.Once
	err  error
	srv  *sshdpkg.Server
}

// needSSHD returns the -e and --remote-msync flags that reach this host
// through the test sshd, running this test binary as msync on the far side.
func needSSHD(t *testing.T) []string {
	t.Helper()
	sshd.once.Do(func() { sshd.srv, sshd.err = sshdpkg.Start() })
	if sshd.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("OpenSSH server: %v (make test installs openssh-server)", sshd.err)
		}
		t.Skipf("SKIP: OpenSSH server: %v (run make deps)", sshd.err)
	}
	return []string{"-e", sshCommand(), "--remote-msync", "MSYNC_E2E_MAIN=1 " + os.Args[0]}
}

func sshCommand() string { return sshd.srv.Command() }

// A TCP daemon serving the temp directory as module "tmp", in a goroutine.
var daemon struct {
	once  sync.Once
	addr  string
	err   error
	token string
	state string // the daemon's state root, removed when the tests end
}

func needDaemon(t *testing.T) string {
	t.Helper()
	daemon.once.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			daemon.err = err
			return
		}
		daemon.addr = ln.Addr().String()
		tmp, _ := filepath.EvalSymlinks(os.TempDir())
		if daemon.state, err = os.MkdirTemp("", "msync-e2e-daemon-state-"); err != nil {
			daemon.err = err
			return
		}
		cfg := &transport.DaemonConfig{Modules: []transport.Module{{Name: "tmp", Path: tmp}, {Name: "ro", Path: tmp, ReadOnly: true}},
			StateDir: daemon.state}
		go transport.ServeListener(context.Background(), ln, cfg)
	})
	if daemon.err != nil {
		t.Fatal(daemon.err)
	}
	return daemon.addr
}

// daemonURL names a directory under the temp directory on the test daemon.
func daemonURL(t *testing.T, module, dir string) string {
	t.Helper()
	tmp, _ := filepath.EvalSymlinks(os.TempDir())
	abs, _ := filepath.EvalSymlinks(filepath.Dir(dir))
	abs = filepath.Join(abs, filepath.Base(dir))
	rel, err := filepath.Rel(tmp, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("%s is not under %s", dir, tmp)
	}
	return "msync://" + needDaemon(t) + "/" + module + "/" + rel
}

// stopSSHD ends the test sshd, if one was started.
func stopSSHD() {
	if sshd.srv != nil {
		sshd.srv.Close()
	}
	if daemon.state != "" {
		os.RemoveAll(daemon.state)
	}
}
