package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msync/msync/transport"
)

// A real OpenSSH server on 127.0.0.1, started once per test binary with a
// generated host key and user key, serving only this user.
var sshd struct {
	once sync.Once
	err  error
	dir  string
	port int
	cmd  *exec.Cmd
}

func startSSHD() error {
	for _, tool := range []string{"sshd", "ssh", "ssh-keygen"} {
		if _, err := lookTool(tool); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "msync-sshd-")
	if err != nil {
		return err
	}
	sshd.dir = dir
	keygen, _ := lookTool("ssh-keygen")
	for _, k := range []string{"host", "user"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			return fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sshd.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitUserEnvironment no
LogLevel ERROR
`, sshd.port, dir, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	}
	bin, _ := lookTool("sshd")
	sshd.cmd = exec.Command(bin, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	logf, _ := os.Create(filepath.Join(dir, "log"))
	sshd.cmd.Stdout, sshd.cmd.Stderr = logf, logf
	if err := sshd.cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", sshd.port)); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	return fmt.Errorf("sshd did not start listening: %s", log)
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := "/usr/sbin/" + name
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed", name)
}

// needSSHD returns the -e and --remote-msync flags that reach this host
// through the test sshd, running this test binary as msync on the far side.
func needSSHD(t *testing.T) []string {
	t.Helper()
	sshd.once.Do(func() { sshd.err = startSSHD() })
	if sshd.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("OpenSSH server: %v (make test installs openssh-server)", sshd.err)
		}
		t.Skipf("SKIP: OpenSSH server: %v (run make deps)", sshd.err)
	}
	return []string{"-e", sshCommand(), "--remote-msync", "MSYNC_E2E_MAIN=1 " + os.Args[0]}
}

func sshCommand() string {
	return fmt.Sprintf("ssh -p %d -i %s/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
		sshd.port, sshd.dir)
}

// A TCP daemon serving the temp directory as module "tmp", in a goroutine.
var daemon struct {
	once  sync.Once
	addr  string
	err   error
	token string
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
		cfg := &transport.DaemonConfig{Modules: []transport.Module{{Name: "tmp", Path: tmp}, {Name: "ro", Path: tmp, ReadOnly: true}}}
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
	if sshd.cmd != nil && sshd.cmd.Process != nil {
		sshd.cmd.Process.Kill()
		sshd.cmd.Wait()
		os.RemoveAll(sshd.dir)
	}
}
