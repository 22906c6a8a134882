// Package transport names the two ends of a pass and connects them: a
// local directory, `[user@]host:path` (msync over ssh, the far side running
// `msync serve --stdio`), or `msync://host[:port]/module/path` (the msync
// daemon, `msync serve --listen`). Whatever the connection, the protocol
// on it is transport/remote's.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kballard/go-shellquote"
	"github.com/msync/msync/transport/remote"
)

// DefaultPort is the msync daemon's TCP port.
const DefaultPort = 7873

// Kind is where an endpoint is.
type Kind int

// Endpoint kinds.
const (
	Local  Kind = iota
	SSH         // [user@]host:path
	Daemon      // msync://host[:port]/module/path
	// RsyncDaemon is a stock rsync daemon: rsync://host[:port]/module[/path].
	RsyncDaemon
	// RsyncShell is stock rsync over a remote shell: host:path given with
	// --rsync (see Endpoint.AsRsync).
	RsyncShell
)

// Rsync reports whether the far side is stock rsync rather than msync.
func (e Endpoint) Rsync() bool { return e.Kind == RsyncDaemon || e.Kind == RsyncShell }

// AsRsync turns a host:path endpoint into one served by stock rsync over
// the remote shell; other endpoints are returned as they are.
func (e Endpoint) AsRsync() Endpoint {
	if e.Kind == SSH {
		e.Kind = RsyncShell
	}
	return e
}

// Endpoint is one side of a pass as the user wrote it.
type Endpoint struct {
	Kind Kind
	Raw  string
	User string
	Host string
	Port int
	// Path is the local path, the path on the ssh host, or
	// "module[/path]" on a daemon.
	Path string
}

func (e Endpoint) String() string { return e.Raw }

// Remote reports whether the endpoint is on another host.
func (e Endpoint) Remote() bool { return e.Kind != Local }

// Parse reads an endpoint the way rsync reads its arguments: a colon before
// the first slash makes a remote shell endpoint.
func Parse(s string) (Endpoint, error) {
	e := Endpoint{Raw: s}
	switch {
	case strings.HasPrefix(s, "msync://"):
		rest := strings.TrimPrefix(s, "msync://")
		hostport, path, _ := strings.Cut(rest, "/")
		if hostport == "" {
			return e, fmt.Errorf("%q: no host (want msync://host[:port]/module/path)", s)
		}
		path = strings.Trim(path, "/")
		if path == "" {
			return e, fmt.Errorf("%q: no module (want msync://host[:port]/module/path)", s)
		}
		e.Kind, e.Path, e.Port = Daemon, path, DefaultPort
		if u, h, ok := strings.Cut(hostport, "@"); ok {
			e.User, hostport = u, h
		}
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			host = strings.Trim(hostport, "[]")
		} else {
			p, err := strconv.Atoi(port)
			if err != nil || p <= 0 || p > 65535 {
				return e, fmt.Errorf("%q: bad port %q", s, port)
			}
			e.Port = p
		}
		e.Host = host
		return e, nil
	case strings.HasPrefix(s, "rsync://"):
		rest := strings.TrimPrefix(s, "rsync://")
		hostport, path, _ := strings.Cut(rest, "/")
		if u, h, ok := strings.Cut(hostport, "@"); ok {
			e.User, hostport = u, h
		}
		path = strings.Trim(path, "/")
		if hostport == "" || path == "" {
			return e, fmt.Errorf("%q: want rsync://host[:port]/module[/path]", s)
		}
		e.Kind, e.Path, e.Port = RsyncDaemon, path, 873
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			host = strings.Trim(hostport, "[]")
		} else if e.Port, err = strconv.Atoi(port); err != nil || e.Port <= 0 || e.Port > 65535 {
			return e, fmt.Errorf("%q: bad port %q", s, port)
		}
		e.Host = host
		return e, nil
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return e, fmt.Errorf("%q: %s:// endpoints are not supported (use host:path over ssh or msync://host/module)", s, scheme)
	}
	colon := strings.IndexByte(s, ':')
	slash := strings.IndexByte(s, '/')
	if colon <= 0 || (slash >= 0 && slash < colon && !strings.HasPrefix(s, "[")) {
		e.Kind, e.Path = Local, s
		return e, nil
	}
	hostpart, path := s[:colon], s[colon+1:]
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]:")
		if end < 0 {
			return e, fmt.Errorf("%q: want [address]:path", s)
		}
		hostpart, path = s[1:end], s[end+2:]
	}
	if u, h, ok := strings.Cut(hostpart, "@"); ok {
		e.User, hostpart = u, h
	}
	if hostpart == "" {
		return e, fmt.Errorf("%q: no host before the colon", s)
	}
	if path == "" {
		path = "."
	}
	e.Kind, e.Host, e.Path = SSH, hostpart, path
	return e, nil
}

// DialOptions say how to reach the far side.
type DialOptions struct {
	// Rsh is the remote shell command, as rsync's -e ("ssh -p 2222 -i key").
	Rsh string
	// RemoteMsync is the command that runs msync on the far side.
	RemoteMsync string
	// Compress is "on", "off" or "auto" (on unless the peer is on loopback).
	Compress string
	// Token authenticates to a daemon module that wants one.
	Token string
	// Stderr receives the remote shell's messages.
	Stderr io.Writer
	// RsyncPath is the command that runs stock rsync on the far side of
	// an RsyncShell endpoint (default "rsync").
	RsyncPath string
	// RsyncChecksum opens stock rsync sources for a verification: their
	// file list carries every file's MD4 (rsync --checksum).
	RsyncChecksum bool
	// SpillDir is where a stock rsync source keeps answers that arrive
	// before the pass reads them (rsync.Options.SpillDir).
	SpillDir string
}

// Conn is a connection to the far side of an endpoint.
type Conn struct {
	*remote.Conn
	Endpoint Endpoint
	Token    string
}

func compressFor(mode, host string) (bool, error) {
	switch mode {
	case "on", "yes", "true":
		return true, nil
	case "off", "no", "false":
		return false, nil
	case "auto", "":
		// Across loopback, compressing costs more CPU than the bytes it
		// saves; elsewhere fast zstd pays for itself on text-heavy trees,
		// and chunks that do not compress are sent as they are.
		if host == "localhost" {
			return false, nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return false, nil
		}
		return true, nil
	}
	return false, fmt.Errorf("--compress=%q: want on, off or auto", mode)
}

// Dial connects to the far side of e.
func Dial(ctx context.Context, e Endpoint, o DialOptions) (*Conn, error) {
	z, err := compressFor(o.Compress, e.Host)
	if err != nil {
		return nil, err
	}
	var rw io.ReadWriteCloser
	switch e.Kind {
	case SSH:
		rw, err = dialSSH(ctx, e, o)
	case Daemon:
		var d net.Dialer
		d.Timeout = 30 * time.Second
		var nc net.Conn
		nc, err = d.DialContext(ctx, "tcp", net.JoinHostPort(e.Host, strconv.Itoa(e.Port)))
		rw = nc
	default:
		return nil, fmt.Errorf("%s: not a remote endpoint", e)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e, err)
	}
	c, err := remote.NewConn(rw, remote.Options{Name: e.Raw, Compress: z})
	if err != nil {
		if sc, ok := rw.(*sshConn); ok {
			if st := sc.status(); st != "" {
				err = fmt.Errorf("%w (%s)", err, st)
			}
		}
		return nil, err
	}
	return &Conn{Conn: c, Endpoint: e, Token: o.Token}, nil
}

// sshConn is the stdio of a remote shell running `msync serve --stdio`.
type sshConn struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  io.ReadCloser
	once sync.Once
	mu   sync.Mutex
	err  error
	done chan struct{}
}

func dialSSH(ctx context.Context, e Endpoint, o DialOptions) (*sshConn, error) {
	rsh := o.Rsh
	if rsh == "" {
		rsh = os.Getenv("MSYNC_RSH")
	}
	if rsh == "" {
		rsh = "ssh"
	}
	args, err := shellquote.Split(rsh)
	if err != nil || len(args) == 0 {
		return nil, fmt.Errorf("--rsh %q: %v", rsh, err)
	}
	target := e.Host
	if e.User != "" {
		target = e.User + "@" + e.Host
	}
	prog := o.RemoteMsync
	if prog == "" {
		prog = "msync"
	}
	args = append(args, target, prog+" serve --stdio")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = o.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// Our own pipe, not StdoutPipe: Wait (which runs as soon as the shell
	// exits) must not close it before what the shell said has been read.
	out, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		out.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	pw.Close()
	c := &sshConn{cmd: cmd, in: in, out: out, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

func (c *sshConn) Read(p []byte) (int, error)  { return c.out.Read(p) }
func (c *sshConn) Write(p []byte) (int, error) { return c.in.Write(p) }

// Close hangs up: the far side sees end of input and exits.
func (c *sshConn) Close() error {
	c.once.Do(func() {
		c.in.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
		c.out.Close()
	})
	return nil
}

// status describes how the remote shell ended, if it did.
func (c *sshConn) status() string {
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return fmt.Sprintf("the remote shell exited with status %d", ee.ExitCode())
	}
	if c.err != nil {
		return c.err.Error()
	}
	return "the remote shell exited"
}
