package scan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/internal/md4"
	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// Hasher wraps a stream of entries of the tree at Root and fills in the
// content hash of every regular file that has none (or of every file when
// Force is set), reading files on several goroutines while keeping order.
// Entries travel in batches (up to batchFiles entries or batchBytes of
// content): one hand-off per file between goroutines cost as much as
// reading a small file.
type Hasher struct {
	ctx     context.Context
	cancel  context.CancelFunc
	ordered chan *hashBatch
	cur     *hashBatch // being returned by Next
	next    int        // index in cur of the entry Next returns next
	mu      sync.Mutex
	errs    map[string]error
	// Bytes counts content read so far (for progress).
	bytes  int64
	srcErr error
}

// hashBatch is a run of consecutive entries; todo indexes the files to hash.
type hashBatch struct {
	es   []*manifest.Entry
	todo []int
	done chan struct{} // closed when todo is hashed; nil when todo is empty
}

const (
	batchFiles = 64
	batchBytes = 1 << 20
)

// Digests a Hasher can compute into manifest.Entry.Hash.
const (
	DigestXXH64 = ""    // xxhash64, msync's own
	DigestMD4   = "md4" // rsync's file checksum (rsync -c, protocol 27-29): its first 8 bytes, little-endian
)

// NewHasher starts hashing the entries of it with xxhash64.
func NewHasher(ctx context.Context, root string, it manifest.Iterator, workers int, force bool) (*Hasher, error) {
	return NewHasherDigest(ctx, root, it, workers, force, DigestXXH64, nil)
}

// NewHasherDigest starts hashing the entries of it with digest. With
// xattrs, it also reads the extended attributes in those namespaces of
// every regular file (for a scan with Config.FileXattrsLater): through the
// descriptor of the files it hashes, by path for the others.
func NewHasherDigest(ctx context.Context, root string, it manifest.Iterator, workers int, force bool, digest string, xattrs []string) (*Hasher, error) {
	r, err := fsx.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	return NewHasherAt(ctx, r, it, workers, force, digest, xattrs)
}

// NewHasherAt is NewHasherDigest for a root already open (a daemon
// resolved it beneath its module); the Hasher owns r and closes it.
func NewHasherAt(ctx context.Context, r *fsx.Root, it manifest.Iterator, workers int, force bool, digest string, xattrs []string) (*Hasher, error) {
	var newHash func() hash.Hash
	switch digest {
	case DigestXXH64:
	case DigestMD4:
		newHash = md4.New
	default:
		r.Close()
		return nil, fmt.Errorf("unknown digest %q", digest)
	}
	if workers <= 0 {
		workers = 2
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &Hasher{ctx: ctx, cancel: cancel, ordered: make(chan *hashBatch, 4096/batchFiles), errs: map[string]error{}}
	work := make(chan *hashBatch, 4096/batchFiles)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			h.hashWorker(ctx, r, work, &fileReader{buf: make([]byte, 256<<10), xattrs: xattrs, newHash: newHash})
		})
	}
	go func() {
		defer func() {
			close(work)
			wg.Wait()
			r.Close()
			close(h.ordered)
		}()
		h.feed(ctx, r, it, work, force, xattrs)
	}()
	return h, nil
}

// hashWorker hashes the files of each batch from work, then marks the
// batch done for Next.
func (h *Hasher) hashWorker(ctx context.Context, r *fsx.Root, work <-chan *hashBatch, rd *fileReader) {
	dirs := r.NewDirs()
	defer dirs.Close()
	rr := newRingReader()
	defer rr.close()
	for b := range work {
		read, errs := rr.hashBatch(ctx, dirs, rd, b)
		h.mu.Lock()
		h.bytes += read
		for p, err := range errs {
			h.errs[p] = err
		}
		h.mu.Unlock()
		close(b.done)
	}
}

// feed reads the entries of it into batches, each sent to h.ordered in
// order and, when it has files to hash, to work. A regular file that needs
// no hash still gets its xattrs (by path) when xattrs are asked for. It
// returns at the end of it, on its error (kept for Next, after the entries
// read before it) or when ctx ends.
func (h *Hasher) feed(ctx context.Context, r *fsx.Root, it manifest.Iterator, work chan<- *hashBatch, force bool, xattrs []string) {
	b, size := &hashBatch{}, int64(0)
	send := func() bool {
		if len(b.todo) > 0 {
			b.done = make(chan struct{})
			select {
			case work <- b:
			case <-ctx.Done():
				return false
			}
		}
		select {
		case h.ordered <- b:
		case <-ctx.Done():
			return false
		}
		b, size = &hashBatch{}, 0
		return true
	}
	for {
		e, err := it.Next()
		if err == io.EOF {
			if len(b.es) > 0 {
				send()
			}
			return
		}
		if err != nil {
			// What was read before the error still comes out first.
			if len(b.es) == 0 || send() {
				h.mu.Lock()
				h.srcErr = err
				h.mu.Unlock()
			}
			return
		}
		b.es = append(b.es, e)
		if e.Type == manifest.TypeFile && (force || !e.HasHash) {
			if force {
				e.HasHash = false
			}
			b.todo = append(b.todo, len(b.es)-1)
			size += e.Size
		} else if e.Type == manifest.TypeFile && len(xattrs) > 0 {
			xs, err := listXattrsBeneath(r, e.Path, xattrs)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				h.mu.Lock()
				h.errs[e.Path] = err
				h.mu.Unlock()
			}
			e.Xattrs = xs
		}
		if len(b.es) >= batchFiles || size >= batchBytes {
			if !send() {
				return
			}
		}
	}
}

// Next returns the next entry, with its hash when it could be read.
func (h *Hasher) Next() (*manifest.Entry, error) {
	for h.cur == nil || h.next == len(h.cur.es) {
		b, ok := <-h.ordered
		if !ok {
			h.cur = nil
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.srcErr != nil {
				return nil, h.srcErr
			}
			if err := h.ctx.Err(); err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		if b.done != nil {
			<-b.done
		}
		h.cur, h.next = b, 0
	}
	e := h.cur.es[h.next]
	h.next++
	return e, nil
}

// Err returns why the file at path could not be hashed, if it could not.
func (h *Hasher) Err(path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.errs[path]
}

// Bytes returns the number of bytes hashed so far.
func (h *Hasher) Bytes() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bytes
}

// Close stops the hasher.
func (h *Hasher) Close() {
	h.cancel()
	for range h.ordered {
	}
}

// ErrChanged reports a file that changed while it was read.
type ErrChanged struct{ Path string }

func (e *ErrChanged) Error() string { return e.Path + ": file changed while it was read" }

// HashFile reads the regular file of e and returns its xxhash64 and length.
// It fails with *ErrChanged when the file turns out longer or shorter than
// scanned: it asks for one byte more than the scanned size, so a file that
// grew or shrank since the scan shows without a system call of its own (an
// fstat after each file cost 8% of a verify's CPU), and a file read whole
// in one call costs one read. A file rewritten at the same size between
// the scan and the read is hashed as it is then: a verify reports it as
// differing in content.
func HashFile(ctx context.Context, dirs *fsx.Dirs, e *manifest.Entry, buf []byte) (uint64, int64, error) {
	return (&fileReader{buf: buf}).hash(ctx, dirs, e)
}

// fileReader hashes files one after the other, reusing its buffers.
type fileReader struct {
	buf     []byte
	newHash func() hash.Hash // nil: xxhash64
	xattrs  []string         // also read these namespaces' xattrs into the entry
	xxh     *xxhash.Digest
	names   []byte // xattr names
}

// hash is HashFile with the reader's digest (of newHash: its first 8
// bytes, little endian). With xattrs, it also sets e.Xattrs in those
// namespaces, read through the open descriptor.
func (r *fileReader) hash(ctx context.Context, dirs *fsx.Dirs, e *manifest.Entry) (uint64, int64, error) {
	f, err := OpenOwned(dirs, e.Path, e.UID)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if len(r.xattrs) > 0 {
		if r.names == nil {
			r.names = make([]byte, 1024)
		}
		if e.Xattrs, err = fsx.ListXattrsFd(f.Fd(), e.Path, r.xattrs, r.names); err != nil {
			return 0, 0, err
		}
	}
	var h hash.Hash
	if r.newHash != nil {
		h = r.newHash()
	} else {
		if r.xxh == nil {
			r.xxh = xxhash.New()
		}
		r.xxh.Reset()
		h = r.xxh
	}
	buf := r.buf
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, n, err
		}
		want := min(int64(len(buf)), e.Size-n+1)
		m, err := f.Read(buf[:want])
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, n, err
		}
		if n+int64(m) > e.Size {
			return 0, n, &ErrChanged{Path: e.Path} // longer than scanned
		}
		h.Write(buf[:m])
		n += int64(m)
		if n == e.Size && int64(m) < want {
			break // a short read at the scanned size: the end of the file
		}
	}
	if n != e.Size {
		return 0, n, &ErrChanged{Path: e.Path} // shorter than scanned
	}
	if r.newHash != nil {
		return binary.LittleEndian.Uint64(h.Sum(nil)), n, nil
	}
	return r.xxh.Sum64(), n, nil
}

// ErrNotRegular is the error of an open for reading of a name that is not
// a regular file (a device node, fifo or socket): such a name is never
// opened at all. Every name opened here was a regular file to some scan.
var ErrNotRegular = errors.New("no longer a regular file")

// openRead opens name in dfd for reading, only if it is a regular file.
// The name a peer asked for, or one swapped since the scan, may be a device
// node, whose open alone has effects (a tape rewinds), or a fifo: so it is
// first taken with O_PATH, which runs no open of the file itself, the inode
// it names is checked to be a regular file, and only that same inode is
// then opened for reading, through /proc/self/fd (without /proc, by name
// again, kept only when it is the inode checked). O_NONBLOCK is kept for
// that last open: it changes nothing for a regular file.
// With noatime it first tries O_NOATIME (reading must not touch the
// source's access times where the kernel allows it to be spared).
func openRead(dfd int, name string, noatime bool) (int, error) {
	pfd, err := openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, ErrNotRegular
	}
	reopen := func(flags int) (int, error) {
		fd, err := openat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(pfd), flags, 0)
		if err != unix.ENOENT {
			return fd, err
		}
		// No /proc: open the name again; keep it only if it is the
		// inode checked, a regular file.
		if fd, err = openat(dfd, name, flags|unix.O_NOFOLLOW, 0); err != nil {
			return -1, err
		}
		var now unix.Stat_t
		if err := unix.Fstat(fd, &now); err != nil {
			unix.Close(fd)
			return -1, err
		}
		if now.Dev != st.Dev || now.Ino != st.Ino {
			unix.Close(fd)
			return -1, ErrNotRegular
		}
		return fd, nil
	}
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	if !noatime {
		return reopen(flags)
	}
	fd, err := reopen(flags | unix.O_NOATIME)
	if err == unix.EPERM {
		// O_NOATIME needs ownership or CAP_FOWNER.
		fd, err = reopen(flags)
	}
	return fd, err
}

// openat is unix.Openat; tests count the opens through it.
var openat = unix.Openat

// euid is this process's effective user id (a variable for tests).
var euid = os.Geteuid()

// mayNoatime reports whether an open with O_NOATIME of a file owned by uid
// can succeed for a process of effective user id euid: the kernel allows it
// to the file's owner and to holders of CAP_FOWNER, which root is taken to
// hold (if it does not, the open falls back on EPERM). Anyone else would
// have each open refused and made again without the flag.
func mayNoatime(euid int, uid uint32) bool {
	return euid == 0 || int64(euid) == int64(uid)
}

// OpenFile opens the regular file rel for reading without following a
// symlink anywhere in its path.
func OpenFile(dirs *fsx.Dirs, rel string) (*fsx.File, error) {
	return openFile(dirs, rel, true)
}

// OpenOwned is OpenFile for a file the scan saw owned by uid: it asks for
// O_NOATIME only where that owner shows the kernel would grant it.
func OpenOwned(dirs *fsx.Dirs, rel string, uid uint32) (*fsx.File, error) {
	return openFile(dirs, rel, mayNoatime(euid, uid))
}

func openFile(dirs *fsx.Dirs, rel string, noatime bool) (*fsx.File, error) {
	dfd, name, err := dirs.At(rel)
	if err != nil {
		return nil, err
	}
	fd, err := openRead(dfd, name, noatime)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	return fsx.NewFile(fd, rel), nil
}
