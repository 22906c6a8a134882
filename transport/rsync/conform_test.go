package rsync

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/sync/tree/sourcetest"
)

// rsyncCaps: stock rsync's file list carries mtimes in seconds here, and
// its sender cannot tell a same-size rewrite between list and request.
var rsyncCaps = sourcetest.Caps{MtimeSeconds: true, SizeOnlyChangeCheck: true, OneScan: true}

// lockedLog collects what a connection logs, from several goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestClientConformsOverShell runs the source suite on msync's rsync
// client against each stock rsync sender, run over a pipe as a remote
// shell would run it.
func TestClientConformsOverShell(t *testing.T) {
	for _, bin := range rsynctest.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			sourcetest.Run(t, rsyncCaps, func(t *testing.T, dir string) (sourcetest.Source, func()) {
				var log lockedLog
				e := Endpoint{Host: "localhost", Path: dir, Rsh: fakeRsh(t, filepath.Join(t.TempDir(), "pid")), RsyncPath: bin.Path, Name: "shell:" + dir}
				c, err := Dial(context.Background(), e, Options{Log: &log})
				if err != nil {
					t.Fatal(err)
				}
				return c, func() {
					c.Close()
					if log.b.Len() > 0 {
						t.Logf("rsync said: %s", log.b.String())
					}
				}
			})
		})
	}
}

// TestClientConformsOverDaemon runs it against each stock rsync daemon.
func TestClientConformsOverDaemon(t *testing.T) {
	for _, bin := range rsynctest.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			// One daemon serves the whole file system; each tree is a path in it.
			port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "all", Path: "/", ReadOnly: true})
			sourcetest.Run(t, rsyncCaps, func(t *testing.T, dir string) (sourcetest.Source, func()) {
				var log lockedLog
				e := Endpoint{Daemon: true, Host: "127.0.0.1", Port: port, Module: "all", Path: dir, Name: "rsync://all" + dir}
				c, err := Dial(context.Background(), e, Options{Log: &log})
				if err != nil {
					t.Fatal(err)
				}
				return c, func() {
					c.Close()
					if log.b.Len() > 0 {
						t.Logf("rsync said: %s", log.b.String())
					}
				}
			})
		})
	}
}
