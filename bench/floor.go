package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/internal/uring"
	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// FloorStats is what a floor probe went through.
type FloorStats struct {
	Entries int64 // everything lstat'ed, roots excluded
	Files   int64 // regular files
	Bytes   int64 // bytes read (Read mode only)
	// Sum is the xor of the xxhash64 of every file read (Hash mode only).
	Sum uint64
}

// Floor makes only the system calls that a pass over roots cannot do
// without, on workers goroutines, and nothing else: for every directory
// open and getdents, for every entry below it fstatat (lstat), and with
// read set, for every regular file openat, read to the end and close; with
// hash set too, what is read is hashed (xxhash64, msync's digest). No
// manifests, no output. Its time is the floor of any tool that has to look
// at every entry (a no-change pass) or read and hash every byte (a checksum
// comparison) on this machine: the kernel's work and the digest's, spread
// over the cores. Symlinks are never followed.
func Floor(ctx context.Context, workers int, read, hash bool, roots ...string) (FloorStats, error) {
	if hash && !read {
		return FloorStats{}, fmt.Errorf("floor: hashing needs read")
	}
	var mu sync.Mutex
	var total FloorStats
	err := walkParallel(ctx, workers, roots, func() (func(string) ([]string, error), func()) {
		p := floorProbe{read: read, dirbuf: make([]byte, 64<<10)}
		if read {
			p.filebuf = make([]byte, 256<<10)
			if !floorRingDisabled {
				p.ring, _ = uring.New(256, 64, 256<<10) // nil where the kernel has none
			}
		}
		if hash {
			p.digest = xxhash.New()
		}
		return p.dir, func() {
			if p.ring != nil {
				p.ring.Close()
			}
			mu.Lock()
			total.Entries += p.st.Entries
			total.Files += p.st.Files
			total.Bytes += p.st.Bytes
			total.Sum ^= p.st.Sum
			mu.Unlock()
		}
	})
	return total, err
}

// walkParallel works through a queue of directories, starting with roots,
// on workers goroutines (4 if workers <= 0). Each goroutine gets its own
// visit function from newWorker and calls it for one directory at a time;
// what visit returns is queued. The first error stops every goroutine, and
// done runs when its goroutine ends.
func walkParallel[T any](ctx context.Context, workers int, roots []T, newWorker func() (visit func(T) ([]T, error), done func())) error {
	if workers <= 0 {
		workers = 4
	}
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		queue   = slices.Clone(roots)
		pending = len(roots) // directories queued or being visited
		firstEr error
	)
	var wg sync.WaitGroup
	for range workers {
		visit, done := newWorker()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer done()
			for {
				mu.Lock()
				for len(queue) == 0 && pending > 0 && firstEr == nil {
					cond.Wait()
				}
				if len(queue) == 0 || firstEr != nil {
					mu.Unlock()
					return
				}
				dir := queue[len(queue)-1]
				queue = queue[:len(queue)-1]
				mu.Unlock()

				var subs []T
				err := ctx.Err()
				if err == nil {
					subs, err = visit(dir)
				}
				mu.Lock()
				if err != nil && firstEr == nil {
					firstEr = err
				}
				queue = append(queue, subs...)
				pending += len(subs) - 1
				cond.Broadcast()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstEr
}

type floorProbe struct {
	read    bool
	digest  *xxhash.Digest // nil: no hashing
	dirbuf  []byte
	filebuf []byte
	st      FloorStats
	ring    *uring.Ring // nil: files are read one system call at a time
	queued  []floorFile
}

// Files under floorRingMax bytes are read through an io_uring when the
// kernel has one, in chains of open, read and close sent a directory at a
// time, as msync's hasher reads them: the floor is what this machine can
// do, not what one call at a time can.
const floorRingMax = 64 << 10

// floorRingDisabled reads every file one call at a time (for tests).
var floorRingDisabled = false

type floorFile struct {
	name string
	buf  []byte
}

// dir lists one directory and returns its subdirectories.
func (p *floorProbe) dir(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	var subs []string
	for {
		n, err := unix.Getdents(fd, p.dirbuf)
		if err != nil {
			return nil, &os.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			return subs, p.flush(fd, dir)
		}
		// Names are lstat'ed straight from the getdents buffer, where the
		// kernel wrote them NUL-terminated: no string per entry.
		for off := 0; off+19 < n; {
			reclen := int(binary.NativeEndian.Uint16(p.dirbuf[off+16:]))
			if reclen < 24 || off+reclen > n { // 24: the smallest record, 8-byte aligned
				return nil, fmt.Errorf("getdents %s: bad record length %d", dir, reclen)
			}
			name := p.dirbuf[off+19 : off+reclen]
			off += reclen
			if name[0] == '.' && (name[1] == 0 || name[1] == '.' && name[2] == 0) {
				continue
			}
			var st unix.Stat_t
			_, _, errno := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(fd), uintptr(unsafe.Pointer(&name[0])), uintptr(unsafe.Pointer(&st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
			if errno != 0 {
				if errno == unix.ENOENT {
					continue
				}
				return nil, &os.PathError{Op: "lstat", Path: filepath.Join(dir, cstring(name)), Err: errno}
			}
			p.st.Entries++
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				subs = append(subs, filepath.Join(dir, cstring(name)))
			case unix.S_IFREG:
				p.st.Files++
				if p.read && st.Size > 0 && p.ring != nil && st.Size < floorRingMax {
					if err := p.queue(fd, dir, cstring(name), int(st.Size)); err != nil {
						return nil, err
					}
				} else if p.read && st.Size > 0 {
					if err := p.readFile(fd, dir, name, st.Size); err != nil {
						return nil, err
					}
				}
			}
		}
	}
}

// queue adds the file name of size bytes in directory dfd to the ring,
// running what the ring holds first when it is full.
func (p *floorProbe) queue(dfd int, dir, name string, size int) error {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NOATIME | unix.O_NONBLOCK // as msync's hasher opens them
	for range 2 {
		if buf, ok := p.ring.ReadChain(dfd, name, flags, size); ok {
			p.queued = append(p.queued, floorFile{name: name, buf: buf})
			return nil
		}
		if err := p.flush(dfd, dir); err != nil {
			return err
		}
	}
	return fmt.Errorf("floor: %s: does not fit in an empty ring", filepath.Join(dir, name))
}

// flush runs the chains queued for directory dfd and hashes what they read.
// A file whose open was refused for O_NOATIME is read the ordinary way.
func (p *floorProbe) flush(dfd int, dir string) error {
	if len(p.queued) == 0 {
		return nil
	}
	res, err := p.ring.Wait()
	q := p.queued
	p.queued = p.queued[:0]
	if err != nil {
		return err
	}
	for i, f := range q {
		open, n := res[i].Open, res[i].Read
		switch {
		case open == -int32(unix.EPERM):
			if err := p.readFile(dfd, dir, append([]byte(f.name), 0), int64(len(f.buf))); err != nil {
				return err
			}
			continue
		case open < 0:
			return &os.PathError{Op: "open", Path: filepath.Join(dir, f.name), Err: unix.Errno(-open)}
		case n < 0:
			return &os.PathError{Op: "read", Path: filepath.Join(dir, f.name), Err: unix.Errno(-n)}
		}
		if p.digest != nil {
			p.st.Sum ^= xxhash.Sum64(f.buf[:n])
		}
		p.st.Bytes += int64(n)
	}
	return nil
}

// cstring is b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func (p *floorProbe) readFile(dfd int, dir string, name []byte, size int64) error {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOATIME | unix.O_NONBLOCK
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dfd), uintptr(unsafe.Pointer(&name[0])), uintptr(flags), 0, 0, 0)
	if errno == unix.EPERM { // O_NOATIME needs ownership or CAP_FOWNER
		fd, _, errno = unix.Syscall6(unix.SYS_OPENAT, uintptr(dfd), uintptr(unsafe.Pointer(&name[0])), uintptr(flags&^unix.O_NOATIME), 0, 0, 0)
	}
	if errno != 0 {
		return &os.PathError{Op: "open", Path: filepath.Join(dir, cstring(name)), Err: errno}
	}
	defer unix.Close(int(fd))
	if p.digest != nil {
		p.digest.Reset()
		defer func() { p.st.Sum ^= p.digest.Sum64() }()
	}
	for size > 0 {
		n, err := unix.Read(int(fd), p.filebuf[:min(int64(len(p.filebuf)), size)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "read", Path: filepath.Join(dir, cstring(name)), Err: err}
		}
		if n == 0 {
			break // shrank since the lstat
		}
		if p.digest != nil {
			p.digest.Write(p.filebuf[:n])
		}
		p.st.Bytes += int64(n)
		size -= int64(n)
	}
	return nil
}

// String prints the stats as the floor command does.
func (s FloorStats) String() string {
	if s.Sum != 0 {
		return fmt.Sprintf("%d entries, %d files, %d bytes read and hashed (xor %016x)", s.Entries, s.Files, s.Bytes, s.Sum)
	}
	return fmt.Sprintf("%d entries, %d files, %d bytes read", s.Entries, s.Files, s.Bytes)
}

// DecodeManifests reads each of the msync manifests at paths to the end,
// one goroutine each, and returns how many entries they hold. A pass that
// carries content hashes over from its last manifests must decode them at
// least once: run beside a floor, it is the floor of such a pass.
func DecodeManifests(ctx context.Context, paths ...string) (int64, error) {
	var (
		wg    sync.WaitGroup
		total atomic.Int64
		errs  = make([]error, len(paths))
	)
	for i, p := range paths {
		wg.Go(func() {
			n, err := decodeManifest(ctx, p)
			total.Add(n)
			errs[i] = err
		})
	}
	wg.Wait()
	return total.Load(), errors.Join(errs...)
}

func decodeManifest(ctx context.Context, path string) (int64, error) {
	r, err := manifest.Open(path)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var n int64
	for {
		if n%4096 == 0 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		_, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err // names the file
		}
		n++
	}
}
