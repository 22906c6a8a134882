// Package sshd starts a private OpenSSH server on 127.0.0.1 with generated
// host and user keys, for tests and benchmarks of msync over ssh. It
// listens on loopback only and admits only the user running it, by key.
package sshd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Server is a running sshd.
type Server struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
}

// Look finds an OpenSSH program in PATH or /usr/sbin.
func Look(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := "/usr/sbin/" + name
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed (apt-get install openssh-server openssh-client)", name)
}

// Start starts a server with its keys and config in a new temp directory.
func Start() (*Server, error) {
	for _, tool := range []string{"sshd", "ssh", "ssh-keygen"} {
		if _, err := Look(tool); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "msync-sshd-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir}
	keygen, _ := Look("ssh-keygen")
	for _, k := range []string{"host", "user"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %[2]s/host
AuthorizedKeysFile %[2]s/authorized_keys
PidFile %[2]s/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitUserEnvironment no
LogLevel ERROR
`, s.Port, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	}
	bin, _ := Look("sshd")
	s.cmd = exec.Command(bin, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	for range 100 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port)); err == nil {
			c.Close()
			return s, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	s.Close()
	return nil, fmt.Errorf("sshd did not start listening: %s", log)
}

// Command is the ssh command line (for -e / --rsh) that reaches the server.
func (s *Server) Command() string {
	return fmt.Sprintf("ssh -p %d -i %s/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
		s.Port, s.Dir)
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
	os.RemoveAll(s.Dir)
}
