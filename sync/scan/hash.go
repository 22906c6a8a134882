package scan

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"golang.org/x/crypto/md4"
	"golang.org/x/sys/unix"
)

// Hasher wraps a stream of entries of the tree at Root and fills in the
// content hash of every regular file that has none (or of every file when
// Force is set), reading files on several goroutines while keeping order.
type Hasher struct {
	ctx     context.Context
	cancel  context.CancelFunc
	ordered chan *slot
	mu      sync.Mutex
	errs    map[string]error
	err     error
	// Bytes counts content read so far (for progress).
	bytes  int64
	srcErr error
}

type slot struct {
	e    *manifest.Entry
	done chan struct{}
}

// Digests a Hasher can compute into manifest.Entry.Hash.
const (
	DigestXXH64 = ""    // xxhash64, msync's own
	DigestMD4   = "md4" // rsync's file checksum (rsync -c, protocol 27-29): its first 8 bytes, little-endian
)

// NewHasher starts hashing the entries of it with xxhash64.
func NewHasher(ctx context.Context, root string, it manifest.Iterator, workers int, force bool) (*Hasher, error) {
	return NewHasherDigest(ctx, root, it, workers, force, DigestXXH64)
}

// NewHasherDigest starts hashing the entries of it with digest.
func NewHasherDigest(ctx context.Context, root string, it manifest.Iterator, workers int, force bool, digest string) (*Hasher, error) {
	var newHash func() hash.Hash
	switch digest {
	case DigestXXH64:
	case DigestMD4:
		newHash = md4.New
	default:
		return nil, fmt.Errorf("unknown digest %q", digest)
	}
	r, err := fsx.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	if workers <= 0 {
		workers = 2
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &Hasher{ctx: ctx, cancel: cancel, ordered: make(chan *slot, 4096), errs: map[string]error{}}
	work := make(chan *slot, 4096)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs := r.NewDirs()
			defer dirs.Close()
			buf := make([]byte, 256<<10)
			for s := range work {
				sum, n, err := hashFile(ctx, dirs, s.e, buf, newHash)
				h.mu.Lock()
				h.bytes += n
				if err != nil {
					h.errs[s.e.Path] = err
				}
				h.mu.Unlock()
				if err == nil {
					s.e.Hash, s.e.HasHash = sum, true
				}
				close(s.done)
			}
		}()
	}
	go func() {
		defer func() {
			close(work)
			wg.Wait()
			r.Close()
			close(h.ordered)
		}()
		for {
			e, err := it.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				h.mu.Lock()
				h.srcErr = err
				h.mu.Unlock()
				return
			}
			s := &slot{e: e}
			if e.Type == manifest.TypeFile && (force || !e.HasHash) {
				if force {
					e.HasHash = false
				}
				s.done = make(chan struct{})
				select {
				case work <- s:
				case <-ctx.Done():
					return
				}
			}
			select {
			case h.ordered <- s:
			case <-ctx.Done():
				return
			}
		}
	}()
	return h, nil
}

// Next returns the next entry, with its hash when it could be read.
func (h *Hasher) Next() (*manifest.Entry, error) {
	s, ok := <-h.ordered
	if !ok {
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
	if s.done != nil {
		<-s.done
	}
	return s.e, nil
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
// It fails with *ErrChanged when the file's size or mtime moved during the
// read or it is no longer the inode that was scanned. It works on the raw
// descriptor and reads exactly the scanned size (no read to see EOF: the
// fstat afterwards tells whether the file grew).
func HashFile(ctx context.Context, dirs *fsx.Dirs, e *manifest.Entry, buf []byte) (uint64, int64, error) {
	return hashFile(ctx, dirs, e, buf, nil)
}

// hashFile is HashFile with newHash's digest (its first 8 bytes, little
// endian) instead of xxhash64 when newHash is set.
func hashFile(ctx context.Context, dirs *fsx.Dirs, e *manifest.Entry, buf []byte, newHash func() hash.Hash) (uint64, int64, error) {
	dfd, name, err := dirs.At(e.Path)
	if err != nil {
		return 0, 0, err
	}
	fd, err := openRead(dfd, name)
	if err != nil {
		return 0, 0, &os.PathError{Op: "open", Path: e.Path, Err: err}
	}
	defer unix.Close(fd)
	var h hash.Hash = xxhash.New()
	if newHash != nil {
		h = newHash()
	}
	var n int64
	for n < e.Size {
		if err := ctx.Err(); err != nil {
			return 0, n, err
		}
		m, err := unix.Read(fd, buf[:min(int64(len(buf)), e.Size-n)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, n, &os.PathError{Op: "read", Path: e.Path, Err: err}
		}
		if m == 0 {
			break // shorter than scanned: the fstat below reports it
		}
		h.Write(buf[:m])
		n += int64(m)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, n, &os.PathError{Op: "fstat", Path: e.Path, Err: err}
	}
	if st.Ino != e.Inode || st.Size != n || st.Mtim.Nano() != e.Mtime {
		return 0, n, &ErrChanged{Path: e.Path}
	}
	if newHash != nil {
		return binary.LittleEndian.Uint64(h.Sum(nil)), n, nil
	}
	return h.(*xxhash.Digest).Sum64(), n, nil
}

func openRead(dfd int, name string) (int, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		// O_NOATIME needs ownership or CAP_FOWNER.
		fd, err = unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	return fd, err
}

// OpenFile opens the regular file rel for reading without following a
// symlink anywhere in its path.
func OpenFile(dirs *fsx.Dirs, rel string) (*os.File, error) {
	dfd, name, err := dirs.At(rel)
	if err != nil {
		return nil, err
	}
	fd, err := openRead(dfd, name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	return os.NewFile(uintptr(fd), rel), nil
}
