// Package tree is what a pass or a verification needs from one side: a
// scan of the tree in manifest order and, for a source, the content of its
// files. Local implements it on this host; the msync wire protocol
// (transport/remote) implements it across a connection.
package tree

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/send"
)

// ScanConfig says how to scan.
type ScanConfig struct {
	Exclude []string // rsync-style patterns
	Xattrs  []string // extended attribute namespaces to read
	Hash    bool     // hash every regular file (verify)
	Digest  string   // with Hash: scan.DigestXXH64 or scan.DigestMD4 (against stock rsync)
	Workers int      // hashing goroutines; 0 means 2
	// Prev is the tree's last manifest, used as a hash and xattr cache by a
	// local scan; remote scans ignore it.
	Prev manifest.Iterator
	// FreshXattrs: Prev holds other xattrs than Xattrs (scan.Config).
	FreshXattrs bool
	// Cache is a file where a remote scan keeps the last full scan it
	// received, so that the next one can come as a diff; local scans
	// ignore it.
	Cache string
}

// Scan is a running scan.
type Scan interface {
	// Next returns the next entry, or io.EOF at the end.
	Next() (*manifest.Entry, error)
	// Problems lists what could not be scanned; complete after io.EOF.
	Problems() []scan.Problem
	// HashErr says why a file has no hash in a hashing scan.
	HashErr(path string) error
	Close()
}

// Reply streams the operations of one fetched file (see send.File).
type Reply interface {
	io.Reader
	// Result waits for the end of the reply and returns its outcome.
	Result() (*send.Result, error)
	// Close abandons what is left of the reply.
	Close()
}

// Local is a tree on this host.
type Local struct {
	// Root is the tree's path; for a tree from NewLocalAt, only its name.
	Root string
	mu   sync.Mutex
	dirs []*fsx.Dirs
	root *fsx.Root
	at   bool // root was given open: Root is never opened
}

// NewLocal returns the tree at root.
func NewLocal(root string) *Local { return &Local{Root: root} }

// NewLocalAt returns the tree open as r (a daemon resolved it beneath its
// module), named r.Path; everything reads through r, which the tree owns.
func NewLocalAt(r *fsx.Root) *Local { return &Local{Root: r.Path, root: r, at: true} }

// OpenRoot returns the tree's root, open, for the caller to close.
func (l *Local) OpenRoot() (*fsx.Root, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at {
		if l.root == nil {
			return nil, fmt.Errorf("%s: tree closed", l.Root)
		}
		return l.root.Dup()
	}
	return fsx.OpenRoot(l.Root)
}

// String returns the root path.
func (l *Local) String() string { return l.Root }

// JoinName names path rel of the tree called name ("host:/srv",
// "host:", "rsync://host/module"), for messages: what a remote Source's
// Join returns.
func JoinName(name, rel string) string {
	if rel == "" {
		return name
	}
	if strings.HasSuffix(name, "/") || strings.HasSuffix(name, ":") {
		return name + rel
	}
	return name + "/" + rel
}

// HostPath returns the tree's path on this host (Root).
func (l *Local) HostPath() string { return l.Root }

// Join returns the host path of rel, for messages.
func (l *Local) Join(rel string) string {
	return (&fsx.Root{Path: l.Root}).Join(rel)
}

// ACLSupport reports whether the tree's file system stores POSIX ACLs.
// A tree open beneath a descriptor (NewLocalAt) cannot tell: its Root is
// only a name.
func (l *Local) ACLSupport() (bool, error) {
	if l.at {
		return false, fmt.Errorf("%s: ACL support of a tree open beneath a descriptor is unknown", l.Root)
	}
	return fsx.ACLSupport(l.Root)
}

// Close releases cached descriptors.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.dirs {
		d.Close()
	}
	l.dirs = nil
	if l.root != nil {
		l.root.Close()
		l.root = nil
	}
	return nil
}

// Scan starts a scan of the tree.
func (l *Local) Scan(ctx context.Context, c ScanConfig) (Scan, error) {
	ex, err := filter.New(c.Exclude)
	if err != nil {
		return nil, err
	}
	prev := c.Prev
	if c.Hash {
		prev = nil // verify hashes everything afresh
	}
	// Hashing opens every regular file: their xattrs are read there,
	// through the descriptor.
	later := c.Hash && len(c.Xattrs) > 0
	cfg := scan.Config{Root: l.Root, Exclude: ex, Xattrs: c.Xattrs, Prev: prev, FreshXattrs: c.FreshXattrs, FileXattrsLater: later}
	if l.at {
		if cfg.Dir, err = l.OpenRoot(); err != nil {
			return nil, err
		}
		defer cfg.Dir.Close()
	}
	sc, err := scan.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ls := &localScan{sc: sc, it: sc}
	if c.Hash {
		r, err := l.OpenRoot()
		if err != nil {
			sc.Close()
			return nil, err
		}
		h, err := scan.NewHasherAt(ctx, r, sc, c.Workers, true, c.Digest, c.Xattrs)
		if err != nil {
			sc.Close()
			return nil, err
		}
		ls.h, ls.it = h, h
	}
	return ls, nil
}

type localScan struct {
	sc *scan.Scanner
	h  *scan.Hasher
	it manifest.Iterator
}

func (s *localScan) Next() (*manifest.Entry, error) { return s.it.Next() }
func (s *localScan) Problems() []scan.Problem       { return s.sc.Problems() }
func (s *localScan) HashErr(path string) error {
	if s.h == nil {
		return nil
	}
	return s.h.Err(path)
}
func (s *localScan) Close() {
	if s.h != nil {
		s.h.Close()
	}
	s.sc.Close()
}

func (l *Local) getDirs() (*fsx.Dirs, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.dirs); n > 0 {
		d := l.dirs[n-1]
		l.dirs = l.dirs[:n-1]
		return d, nil
	}
	if l.root == nil {
		if l.at {
			return nil, fmt.Errorf("%s: tree closed", l.Root)
		}
		r, err := fsx.OpenRoot(l.Root)
		if err != nil {
			return nil, err
		}
		l.root = r
	}
	return l.root.NewDirs(), nil
}

func (l *Local) putDirs(d *fsx.Dirs) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirs = append(l.dirs, d)
}

// Send writes the operations of one file to w (see send.File).
func (l *Local) Send(ctx context.Context, req *send.Request, w io.Writer) *send.Result {
	dirs, err := l.getDirs()
	if err != nil {
		return &send.Result{Status: send.Failed, Err: err}
	}
	defer l.putDirs(dirs)
	return send.File(ctx, dirs, req, w)
}

// Fetch sends one file through an in-process pipe.
func (l *Local) Fetch(ctx context.Context, req *send.Request) (Reply, error) {
	pr, pw := io.Pipe()
	r := &localReply{pr: pr, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.res = l.Send(ctx, req, pw)
		pw.Close()
	}()
	return r, nil
}

type localReply struct {
	pr   *io.PipeReader
	done chan struct{}
	res  *send.Result
}

func (r *localReply) Read(p []byte) (int, error) { return r.pr.Read(p) }

func (r *localReply) Result() (*send.Result, error) {
	// Whatever the receiver did not read is not needed any more.
	r.pr.CloseWithError(io.ErrClosedPipe)
	<-r.done
	if r.res == nil {
		return nil, fmt.Errorf("fetch: no result")
	}
	return r.res, nil
}

func (r *localReply) Close() { r.Result() }
