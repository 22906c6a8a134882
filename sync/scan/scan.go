// Package scan walks a local tree and yields its entries in manifest order
// (manifest.Compare), listing directories on several goroutines while the
// caller consumes the stream. Content hashes are reused from a previous
// manifest when a file's identity is unchanged, and computed on demand.
package scan

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// Config says what to scan and how.
type Config struct {
	Root string
	// Dir, when set, is the root already open (a daemon resolved it
	// beneath its module): the scan works through a duplicate of it and
	// never opens Root, which then only names the tree in messages.
	Dir     *fsx.Root
	Exclude *filter.Matcher
	// Xattrs reads extended attributes in these namespaces; none if empty.
	Xattrs []string
	// Workers list directories concurrently; 0 means 2.
	Workers int
	// Prev is the last manifest of this tree: an object whose identity is
	// unchanged (see manifest.SameIdentity) gets the hash and the xattrs
	// recorded there. Changing an xattr changes the ctime, so reusing them
	// is as safe as reusing the hash, and saves a system call per file.
	Prev manifest.Iterator
	// FreshXattrs: Prev was written by a scan that read other xattrs
	// than Xattrs (see state.Dir.XattrsMatch); take only hashes from it.
	FreshXattrs bool
	// FileXattrsLater leaves the xattrs of regular files to whoever opens
	// them next (a Hasher with the same namespaces reads them through the
	// descriptor it hashes, without a lookup of the whole path).
	FileXattrsLater bool
	// OwnTemp says which names are the temp files of the scanning pass's
	// own migration (a destination's leftovers of a killed pass): they are
	// not yielded but reported in Temps, for the pass to remove. Nil: no
	// name is, and every name is yielded; a name that merely looks like a
	// temp name is a user's.
	OwnTemp func(name string) bool
}

// Problem is a path that could not be scanned; the scan goes on without it.
type Problem struct {
	Path string
	Err  error
}

func (p Problem) Error() string { return p.Err.Error() }

// Scanner is a running scan. Next yields entries; Problems and Temps are
// complete once Next has returned io.EOF.
type Scanner struct {
	cfg   Config
	root  *fsx.Root
	out   chan []*manifest.Entry
	errc  chan error
	batch []*manifest.Entry // consumer side
	pend  []*manifest.Entry // producer side
	prev  *manifest.Peeker

	mu       sync.Mutex
	cond     *sync.Cond
	queue    jobHeap
	ahead    int // entries listed by workers and not yet walked
	closed   bool
	problems []Problem
	temps    map[string][]string // by parent directory

	// cacheXattrs: Prev has entries, so xattrs are read in emit, only for
	// objects whose identity changed; otherwise the listing workers read them.
	cacheXattrs bool
	isRoot      bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
	eof    bool
}

type job struct {
	path     string
	state    int // 0 queued, 1 running, 2 done
	done     chan struct{}
	children []*manifest.Entry
	// subs holds the jobs of the children that are directories, at their
	// index (nil when there are none): spawn queues them as soon as this
	// directory is listed.
	subs    []*job
	err     error
	counted int // entries added to Scanner.ahead by a worker
}

type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, j int) bool { return manifest.Compare(h[i].path, h[j].path) < 0 }
func (h jobHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// maxAhead bounds the entries listed ahead of the walk (memory: about 200
// bytes each). Workers wait when it is reached; the walk lists a directory
// itself when no worker has started it, so the bound never stalls it.
//
// It is small on purpose. Entries listed far ahead only grow the heap, and
// every page of heap the process touches for the first time is a page fault
// (about 20 us each on the project's VM). A no-change pass over 139k entries
// took 0.86 s with 64k entries ahead and a 64-batch output channel (9,000
// page faults), and 0.78 s with 2k and 4 (6,000); from dropped caches the
// two took the same time (2.2 s).
const maxAhead = 2 << 10

// outBatches is how many batches of entries (of up to 256) wait for Next.
const outBatches = 4

// Start begins scanning cfg.Root. The root must be a directory; like rsync's
// "SRC/", a root that is a symlink to a directory is followed (nothing below
// the root ever is).
func Start(ctx context.Context, cfg Config) (*Scanner, error) {
	var root *fsx.Root
	var err error
	if cfg.Dir != nil {
		root, err = cfg.Dir.Dup()
	} else {
		root, err = fsx.OpenRoot(cfg.Root)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(root.Fd(), &st); err != nil {
		root.Close()
		return nil, &os.PathError{Op: "stat", Path: root.Path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		root.Close()
		return nil, fmt.Errorf("%s: not a directory", root.Path)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Scanner{cfg: cfg, root: root, out: make(chan []*manifest.Entry, outBatches), errc: make(chan error, 1),
		cancel: cancel, prev: manifest.NewPeeker(cfg.Prev)}
	s.cond = sync.NewCond(&s.mu)
	s.isRoot = os.Geteuid() == 0
	if first, err := s.prev.Peek(); err == nil && first != nil {
		s.cacheXattrs = len(cfg.Xattrs) > 0
	}
	rootEntry := FromStat("", &st)
	if rootEntry.Xattrs, err = rootXattrs(root, cfg.Xattrs); err != nil {
		root.Close()
		return nil, err
	}
	for range cfg.Workers {
		s.wg.Add(1)
		go s.worker()
	}
	go func() {
		err := s.walk(ctx, rootEntry, s.submit(""))
		if err == nil && len(s.pend) > 0 {
			err = s.send(ctx)
		}
		s.mu.Lock()
		s.closed = true
		s.cond.Broadcast()
		s.mu.Unlock()
		s.wg.Wait()
		s.root.Close()
		s.errc <- err
		close(s.out)
	}()
	return s, nil
}

// Close stops the scan early and waits for its goroutines.
func (s *Scanner) Close() {
	s.cancel()
	for range s.out {
	}
}

// Next returns the next entry, io.EOF at the end, or the error that stopped
// the scan.
func (s *Scanner) Next() (*manifest.Entry, error) {
	for len(s.batch) == 0 {
		if s.eof {
			if s.err != nil {
				return nil, s.err
			}
			return nil, io.EOF
		}
		b, ok := <-s.out
		if !ok {
			s.eof = true
			s.err = <-s.errc
			continue
		}
		s.batch = b
	}
	e := s.batch[0]
	s.batch = s.batch[1:]
	return e, nil
}

// Problems lists paths that could not be read.
func (s *Scanner) Problems() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// Temps lists leftover temporary files found so far (paths relative to the
// root) that TakeTemps has not taken.
func (s *Scanner) Temps() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, t := range s.temps {
		out = append(out, t...)
	}
	slices.SortFunc(out, manifest.Compare)
	return out
}

// TakeTemps returns and forgets the leftover temporary files directly in
// dir. A directory's temps are known once Next has returned the directory.
func (s *Scanner) TakeTemps(dir string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.temps[dir]
	delete(s.temps, dir)
	return t
}

func (s *Scanner) problem(path string, err error) {
	s.mu.Lock()
	s.problems = append(s.problems, Problem{Path: path, Err: err})
	s.mu.Unlock()
}

func (s *Scanner) submit(path string) *job {
	j := &job{path: path, done: make(chan struct{})}
	s.mu.Lock()
	heap.Push(&s.queue, j)
	s.cond.Signal()
	s.mu.Unlock()
	return j
}

// spawn queues a job for each directory among j's children as soon as j
// is listed, before the walk reaches j, so that the workers list ahead of
// the walk: the queue's order (manifest.Compare of the paths) is the
// walk's, so the directory the walk needs next is listed first. When the
// walk queued the subdirectories only on reaching their parent, the workers
// often had nothing to list; the walk waited on them or listed directories
// itself, and a scan of 141k entries took 0.41-0.49 s (0.38-0.45 s now).
// It must run before j.done is closed: the walk reads j.subs after that.
func (s *Scanner) spawn(j *job) {
	var subs []*job
	for i, c := range j.children {
		if c.Type == manifest.TypeDir {
			if subs == nil {
				subs = make([]*job, len(j.children))
			}
			subs[i] = &job{path: c.Path, done: make(chan struct{})}
		}
	}
	if subs == nil {
		return
	}
	s.mu.Lock()
	for _, sj := range subs {
		if sj != nil {
			heap.Push(&s.queue, sj)
		}
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	j.subs = subs
}

func (s *Scanner) worker() {
	defer s.wg.Done()
	dirs := s.root.NewDirs()
	defer dirs.Close()
	for {
		s.mu.Lock()
		for !s.closed && (len(s.queue) == 0 || s.ahead >= maxAhead) {
			s.cond.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			return
		}
		j := heap.Pop(&s.queue).(*job)
		if j.state != 0 {
			s.mu.Unlock()
			continue
		}
		j.state = 1
		s.mu.Unlock()
		j.children, j.err = s.list(dirs, j.path)
		s.spawn(j)
		s.mu.Lock()
		j.state = 2
		j.counted = len(j.children) + 1
		s.ahead += j.counted
		s.mu.Unlock()
		close(j.done)
	}
}

// wait returns the finished job, running it on this goroutine if no worker
// has started it yet (so the walk never waits behind read-ahead).
func (s *Scanner) wait(dirs *fsx.Dirs, j *job) {
	s.mu.Lock()
	if j.state == 0 {
		j.state = 1
		s.mu.Unlock()
		j.children, j.err = s.list(dirs, j.path)
		s.spawn(j)
		s.mu.Lock()
		j.state = 2
		s.mu.Unlock()
		close(j.done)
		return
	}
	s.mu.Unlock()
	<-j.done
	s.mu.Lock()
	s.ahead -= j.counted
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *Scanner) emit(ctx context.Context, e *manifest.Entry) error {
	var prev *manifest.Entry
	for {
		p, err := s.prev.Peek()
		if err != nil {
			return fmt.Errorf("previous manifest: %w", err)
		}
		if p == nil || manifest.Compare(p.Path, e.Path) > 0 {
			break
		}
		s.prev.Take()
		if p.Path == e.Path && manifest.SameIdentity(p, e) {
			prev = p
		}
	}
	if prev != nil && prev.HasHash && e.Type == manifest.TypeFile {
		e.Hash, e.HasHash = prev.Hash, true
	}
	if s.cacheXattrs && e.Path != "" && s.wantXattrs(e) {
		if prev != nil && !s.cfg.FreshXattrs {
			e.Xattrs = prev.Xattrs
		} else {
			xs, err := s.listXattrs(e.Path)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				s.problem(e.Path, err)
			}
			e.Xattrs = xs
		}
	}
	s.pend = append(s.pend, e)
	if len(s.pend) >= 256 {
		return s.send(ctx)
	}
	return nil
}

func (s *Scanner) send(ctx context.Context) error {
	select {
	case s.out <- s.pend:
		s.pend = nil
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Scanner) walk(ctx context.Context, dir *manifest.Entry, j *job) error {
	dirs := s.root.NewDirs()
	defer dirs.Close()
	return s.walkDir(ctx, dirs, dir, j)
}

func (s *Scanner) walkDir(ctx context.Context, dirs *fsx.Dirs, dir *manifest.Entry, j *job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wait(dirs, j)
	if j.err != nil {
		if dir.Path == "" {
			return j.err
		}
		dir.Incomplete = true
		s.problem(dir.Path, j.err)
	}
	if err := s.emit(ctx, dir); err != nil {
		return err
	}
	children, subs := j.children, j.subs
	j.children, j.subs = nil, nil
	for i, c := range children {
		if subs != nil && subs[i] != nil {
			if err := s.walkDir(ctx, dirs, c, subs[i]); err != nil {
				return err
			}
			continue
		}
		if err := s.emit(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// listXattrs reads the xattrs of rel, for emit, which holds no directory
// descriptor (list uses fsx.ListXattrsAt). Read-only, so a plain path is
// fine (and cheaper than /proc) unless it is longer than the kernel takes;
// then the parent is reached component by component.
func (s *Scanner) listXattrs(rel string) ([]manifest.Xattr, error) {
	return listXattrsBeneath(s.root, rel, s.cfg.Xattrs)
}

// listXattrsBeneath reads the xattrs of rel beneath r: by its host path
// when r has one and it is short enough, else through the descriptor of
// its parent, reached component by component.
func listXattrsBeneath(r *fsx.Root, rel string, ns []string) ([]manifest.Xattr, error) {
	if p := r.Join(rel); r.HostPath() && len(p) < 3800 {
		return fsx.ListXattrs(p, ns)
	}
	if rel == "" {
		return rootXattrs(r, ns)
	}
	dirs := r.NewDirs()
	defer dirs.Close()
	dfd, name, err := dirs.At(rel)
	if err != nil {
		return nil, err
	}
	xs, err := fsx.ListXattrs(fsx.ProcPath(dfd, name), ns)
	if pe, ok := err.(*os.PathError); ok {
		pe.Path = r.Join(rel) // not the /proc path
	}
	return xs, err
}

// dirBufs hold getdents records for list.
var dirBufs = sync.Pool{New: func() any { b := make([]byte, fsx.DirBufSize); return &b }}

// list reads directory dir and lstats its children, sorted by name. Names
// are lstat'ed in the directory's order, straight from the getdents buffer;
// each costs one string, its path.
func (s *Scanner) list(dirs *fsx.Dirs, dir string) ([]*manifest.Entry, error) {
	fd, err := dirs.Dir(dir)
	if err != nil {
		return nil, err
	}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	bp := dirBufs.Get().(*[]byte)
	defer dirBufs.Put(bp)
	var out []*manifest.Entry
	var temps []string
	var xbuf []byte // names of xattrs, for ListXattrsAt
	err = fsx.ReadDir(fd, *bp, func(cname []byte) error {
		rel := prefix + string(cname[:len(cname)-1])
		name := rel[len(prefix):]
		if s.cfg.OwnTemp != nil && s.cfg.OwnTemp(name) {
			temps = append(temps, rel)
			return nil
		}
		if len(name) > manifest.MaxNameLen || len(rel) > manifest.MaxPathLen {
			s.problem(rel, fmt.Errorf("%s: name too long", s.root.Join(rel)))
			return nil
		}
		var st unix.Stat_t
		if err := fsx.Lstatat(fd, cname, &st); err != nil {
			if err == unix.ENOENT {
				return nil // vanished between readdir and lstat: not there now
			}
			s.problem(rel, &os.PathError{Op: "lstat", Path: s.root.Join(rel), Err: err})
			return nil
		}
		e := FromStat(rel, &st)
		if s.cfg.Exclude.Excluded(rel, e.Type == manifest.TypeDir) {
			return nil
		}
		if e.Type == manifest.TypeSymlink {
			t, err := readlinkat(fd, name, st.Size)
			if err != nil {
				if errors.Is(err, unix.ENOENT) {
					return nil
				}
				s.problem(rel, &os.PathError{Op: "readlink", Path: s.root.Join(rel), Err: err})
				return nil
			}
			e.LinkTarget = t
			e.Size = int64(len(t))
		}
		if !s.cacheXattrs && s.wantXattrs(e) {
			if xbuf == nil {
				xbuf = make([]byte, 1024)
			}
			xs, err := fsx.ListXattrsAt(fd, cname, s.root.Join(rel), s.cfg.Xattrs, xbuf)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				s.problem(rel, err)
			}
			e.Xattrs = xs
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", s.root.Join(dir), err)
	}
	// One directory's paths share their prefix: byte order of the paths is
	// the byte order of the names.
	slices.SortFunc(out, func(a, b *manifest.Entry) int { return strings.Compare(a.Path, b.Path) })
	if len(temps) > 0 {
		slices.Sort(temps)
		s.mu.Lock()
		if s.temps == nil {
			s.temps = map[string][]string{}
		}
		s.temps[dir] = append(s.temps[dir], temps...)
		s.mu.Unlock()
	}
	return out, nil
}

// wantXattrs: user xattrs exist only on files and directories, but any
// object except a symlink may have an ACL; root also reads the trusted.
// and security. namespaces of symlinks.
func (s *Scanner) wantXattrs(e *manifest.Entry) bool {
	if e.Type == manifest.TypeFile && s.cfg.FileXattrsLater {
		return false
	}
	return len(s.cfg.Xattrs) > 0 && (e.Type != manifest.TypeSymlink || s.isRoot)
}

func readlinkat(fd int, name string, size int64) (string, error) {
	n := max(int(size)+1, 128)
	for n <= 1<<16 {
		buf := make([]byte, n)
		m, err := unix.Readlinkat(fd, name, buf)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(buf[:m]), nil
		}
		n *= 2
	}
	return "", errors.New("link target too long")
}

// rootXattrs reads the root directory's xattrs (the walk reads everything
// else), through its descriptor.
func rootXattrs(r *fsx.Root, ns []string) ([]manifest.Xattr, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	return fsx.ListXattrsFd(r.Fd(), r.Path, ns, make([]byte, 1024))
}

// FromStat converts lstat results to an entry.
func FromStat(rel string, st *unix.Stat_t) *manifest.Entry {
	e := &manifest.Entry{
		Path:  rel,
		Mode:  st.Mode & 0o7777,
		UID:   st.Uid,
		GID:   st.Gid,
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
		Dev:   st.Dev,
		Inode: st.Ino,
		Nlink: uint32(st.Nlink),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = manifest.TypeFile
		e.Size = st.Size
	case unix.S_IFDIR:
		e.Type = manifest.TypeDir
	case unix.S_IFLNK:
		e.Type = manifest.TypeSymlink
		e.Size = st.Size
	case unix.S_IFIFO:
		e.Type = manifest.TypeFifo
	case unix.S_IFCHR:
		e.Type = manifest.TypeChar
		e.Rdev = st.Rdev
	case unix.S_IFBLK:
		e.Type = manifest.TypeBlock
		e.Rdev = st.Rdev
	case unix.S_IFSOCK:
		e.Type = manifest.TypeSocket
	}
	return e
}
