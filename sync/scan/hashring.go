package scan

import (
	"context"
	"encoding/binary"
	"os"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/internal/uring"
	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// Small files are hashed through an io_uring when the kernel allows it:
// open, read and close of each file go to the kernel as one linked chain,
// and a run of files in one directory as one system call. Anything the
// ring does not read exactly (an error, a file that grew or shrank) is read
// again the ordinary way, which gives the error the caller would have had.
const (
	ringMaxFile = 64 << 10  // larger files are read the ordinary way
	ringArena   = 256 << 10 // content read by one submission
	ringSlots   = batchFiles
)

// ringDisabled turns the ring off (MSYNC_URING=off, for comparisons and
// for kernels where it misbehaves); tests set it too.
var ringDisabled = os.Getenv("MSYNC_URING") == "off"

// ringHashed counts the files hashed from what a ring read (for tests).
var ringHashed atomic.Int64

// ringReader hashes a batch's small files through one ring.
type ringReader struct {
	ring   *uring.Ring
	dir    string // the directory of every queued file
	q      []ringFile
	cname  []byte // NUL-terminated name for listxattrat
	xnames []byte // xattr name list buffer
}

type ringFile struct {
	e   *manifest.Entry
	buf []byte
}

// newRingReader returns a reader without a ring (that reads every file
// the ordinary way) when the ring is off or the kernel cannot run it.
func newRingReader() *ringReader {
	rr := &ringReader{q: make([]ringFile, 0, ringSlots)}
	if !ringDisabled {
		rr.ring, _ = uring.New(4*ringSlots, ringSlots, ringArena)
	}
	return rr
}

func (rr *ringReader) close() {
	if rr.ring != nil {
		rr.ring.Close()
	}
}

// hashBatch hashes the files of b.todo, the small ones through the ring
// if there is one, and returns the bytes read and the errors by path.
func (rr *ringReader) hashBatch(ctx context.Context, dirs *fsx.Dirs, rd *fileReader, b *hashBatch) (int64, map[string]error) {
	var read int64
	var errs map[string]error
	fail := func(e *manifest.Entry, err error) {
		if errs == nil {
			errs = map[string]error{}
		}
		errs[e.Path] = err
	}
	// plain reads e the ordinary way.
	plain := func(e *manifest.Entry) {
		sum, n, err := rd.hash(ctx, dirs, e)
		read += n
		if err != nil {
			fail(e, err)
			return
		}
		e.Hash, e.HasHash = sum, true
	}
	// flush runs what is queued. It must come before dirs is asked for
	// another directory: the queued opens name theirs by a descriptor
	// that dirs then closes, and whose number the next open reuses.
	flush := func() {
		if len(rr.q) == 0 {
			return
		}
		n, redo := rr.flush(rd)
		read += n
		for _, e := range redo {
			plain(e)
		}
	}
	for _, i := range b.todo {
		e := b.es[i]
		if ctx.Err() != nil {
			fail(e, ctx.Err())
			continue
		}
		dir, name := fsx.Split(e.Path)
		if rr.ring == nil || e.Size >= ringMaxFile || len(name) > unix.NAME_MAX {
			flush()
			plain(e)
			continue
		}
		if dir != rr.dir {
			flush()
		}
		dfd, _, err := dirs.At(e.Path)
		if err != nil {
			flush()
			plain(e) // fails the same way, with the ordinary error
			continue
		}
		if len(rd.xattrs) > 0 {
			if rr.xnames == nil {
				rr.xnames = make([]byte, 1024)
			}
			rr.cname = append(append(rr.cname[:0], name...), 0)
			xs, err := fsx.ListXattrsAt(dfd, rr.cname, e.Path, rd.xattrs, rr.xnames)
			if err != nil {
				flush()
				plain(e)
				continue
			}
			e.Xattrs = xs
		}
		// O_NONBLOCK, as openRead: a fifo put in the file's place since
		// the scan would otherwise block the open, and the ring's worker
		// and this hasher with it, until some writer came. For a regular
		// file it changes nothing (on 6.18, cold reads through the ring
		// still wait for the disk); a kernel that answered EAGAIN instead
		// would only send the file to the ordinary reader below.
		flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK
		if mayNoatime(euid, e.UID) {
			flags |= unix.O_NOATIME // else refused, and the file read again by plain
		}
		size := int(e.Size) + 1 // one byte more shows a file that grew
		buf, ok := rr.ring.ReadChain(dfd, name, flags, size)
		if !ok {
			flush()
			if rr.ring == nil {
				plain(e)
				continue
			}
			if buf, ok = rr.ring.ReadChain(dfd, name, flags, size); !ok {
				plain(e) // cannot happen: the ring is empty and e fits
				continue
			}
		}
		rr.dir = dir
		rr.q = append(rr.q, ringFile{e: e, buf: buf})
	}
	flush()
	return read, errs
}

// flush runs the queued chains and hashes what they read. It returns the
// bytes hashed and the entries to read again the ordinary way.
func (rr *ringReader) flush(rd *fileReader) (int64, []*manifest.Entry) {
	q := rr.q
	res, err := rr.ring.Wait()
	var redo []*manifest.Entry
	var read int64
	if err != nil {
		// The ring cannot be trusted any more: read the ordinary way.
		rr.ring.Close()
		rr.ring = nil
		for _, f := range q {
			redo = append(redo, f.e)
		}
	} else {
		for i, f := range q {
			if res[i].Open < 0 || int64(res[i].Read) != f.e.Size {
				redo = append(redo, f.e)
				continue
			}
			f.e.Hash, f.e.HasHash = rd.sum(f.buf[:f.e.Size]), true
			read += f.e.Size
			ringHashed.Add(1)
		}
	}
	clear(rr.q)
	rr.q = rr.q[:0]
	return read, redo
}

// sum returns the reader's digest of b, as hash would of a file holding b.
func (r *fileReader) sum(b []byte) uint64 {
	if r.newHash == nil {
		return xxhash.Sum64(b)
	}
	h := r.newHash()
	h.Write(b)
	return binary.LittleEndian.Uint64(h.Sum(nil))
}
