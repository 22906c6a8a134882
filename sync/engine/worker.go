package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/delta"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
	"golang.org/x/sys/unix"
)

// fileJob is one regular file to transfer. The worker fills in out, err and
// the statistics, updates s to what it actually copied, then closes done.
type fileJob struct {
	s, d, m *manifest.Entry
	out     *manifest.Entry
	err     error
	done    chan struct{}
	mode    DeltaMode // the pass's, or what the class's rules ask for
	// deferred: written after the other files of its directory (Rules.Last).
	deferred bool
	// intent is the journal's record of its path (pass.intent).
	intent uint64
	// careful: look at the source file when it is opened (send.Open), not
	// only after it was read; set once it turned out not to be as scanned.
	careful bool
	// ahead: the file was requested when dispatched; reply (or replyErr)
	// is the answer, for the first attempt only.
	ahead    bool
	reply    tree.Reply
	replyErr error
}

// fetch returns the answer to req: the one requested ahead on the first
// attempt, else a new request's.
func (w *worker) fetch(ctx context.Context, j *fileJob, req *send.Request) (tree.Reply, error) {
	if j.ahead {
		j.ahead = false
		r, err := j.reply, j.replyErr
		j.reply, j.replyErr = nil, nil
		return r, err
	}
	return w.ap.src.Fetch(ctx, req)
}

// dropAhead abandons an answer requested ahead that no attempt read (the
// attempt failed before it asked), so that the source does not wait for a
// reader that never comes.
func (j *fileJob) dropAhead() {
	if j.ahead {
		j.ahead = false
		if j.reply != nil {
			j.reply.Close()
		}
		j.reply, j.replyErr = nil, nil
	}
}

// request asks for the file as the scan saw it.
func (j *fileJob) request() *send.Request {
	return send.RequestFor(j.s)
}

type worker struct {
	ap      *applier
	srcDirs *fsx.Dirs
	dstDirs *fsx.Dirs
	buf     []byte
	dbuf    []byte // O_DIRECT copies (fsx.AlignedBuf), made on first use
}

func (ap *applier) newWorker() *worker {
	w := &worker{ap: ap, dstDirs: ap.dst.root.NewDirs(), buf: make([]byte, 256<<10)}
	if ap.srcRoot != nil {
		w.srcDirs = ap.srcRoot.NewDirs()
	}
	return w
}

func (w *worker) close() {
	if w.srcDirs != nil {
		w.srcDirs.Close()
	}
	w.dstDirs.Close()
}

// TestHooks let tests change the source at exact moments of a transfer (see
// also send.TestHooks). They must stay nil outside tests.
var TestHooks struct {
	AfterSign  func(path string) // after the old destination copy was signed for a delta
	DestLocked func(dst string)  // once a pass holds its destination's lock (lockDest)
	// AfterVisible is called right after a pass made a name visible at the
	// destination: op is rename (a file put in place), mkdir, special (a
	// symlink, fifo or device node) or link (a hard link).
	AfterVisible func(op, path string)
}

// errChangedWhileRead marks a read that saw the source file move under it.
var errChangedWhileRead = errors.New("changed while it was read")

type xferStats struct {
	written, literal, matched, wire int64
	appended, delta                 bool
	// copying is the time spent moving the file's bytes (read, delta,
	// write), work the whole time spent on the file, so that a pass can
	// tell its cost per byte from its cost per path (record.PhaseTimes).
	copying, work time.Duration
}

func (w *worker) transfer(ctx context.Context, j *fileJob) {
	ap := w.ap
	var err error
	var st xferStats
	defer j.dropAhead()
	start := time.Now()
	var copying time.Duration
	for attempt := 0; attempt <= ap.o.Retries; attempt++ {
		st, err = w.attempt(ctx, j, j.mode)
		copying += st.copying
		if errors.Is(err, delta.ErrVerify) {
			// The old copy moved under us or the delta was wrong: copy whole.
			st, err = w.attempt(ctx, j, DeltaNever)
			copying += st.copying
		}
		if !errors.Is(err, errChangedWhileRead) {
			break
		}
		ap.t.moved(j.s.Path, "changed while read")
	}
	if err != nil {
		j.err = err
		var pe *os.PathError
		vanished := errors.As(err, &pe) && errors.Is(pe.Err, unix.ENOENT) && pe.Op == "open"
		if !errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", ap.src.Join(j.s.Path), err)
		}
		ap.t.problem(j.s.Path, err, vanished)
		return
	}
	st.copying, st.work = copying, time.Since(start)
	ap.t.transferred(st)
	if c := ap.o.Counters; c != nil {
		c.FilesDone.Add(1)
		c.BytesDone.Add(j.s.Size)
	}
}

// errNotAsScanned marks a local copy that found, after the read, that the
// source file is not as the scan saw it (send.AsScanned).
var errNotAsScanned = errors.New("not as scanned")

// attempt is once, made again the careful way when the source file turned
// out not to be as scanned: that is no retry, and reports nothing.
func (w *worker) attempt(ctx context.Context, j *fileJob, mode DeltaMode) (xferStats, error) {
	st, err := w.once(ctx, j, mode)
	if err == errNotAsScanned {
		j.careful = true
		copying := st.copying
		st, err = w.once(ctx, j, mode)
		st.copying += copying
	}
	return st, err
}

// once makes one attempt: read the source, write a temp file beside the
// destination, check the source did not move, rename into place.
func (w *worker) once(ctx context.Context, j *fileJob, mode DeltaMode) (xferStats, error) {
	var st xferStats
	basis := mode != DeltaNever && j.d != nil && j.d.Type == manifest.TypeFile && j.d.Size > 0
	useBasis := basis && (mode == DeltaAlways || w.ap.local == nil)
	var r localRead // the source file, when read directly
	if w.ap.local != nil && !useBasis {
		var err error
		if r, err = w.openLocal(j); err != nil {
			return st, err
		}
		defer r.f.Close()
	}
	dirfd, name, err := w.dstDirs.At(j.s.Path)
	if err != nil {
		return st, err
	}
	tmpf, tmp, err := w.createTemp(j, dirfd)
	if err != nil {
		return st, err
	}
	committed := false
	defer func() {
		if !committed {
			tmpf.Close()
			if tmp != "" {
				unix.Unlinkat(dirfd, tmp, 0)
			}
		}
	}()

	var hash uint64
	var n int64
	out, finish := w.ap.target(tmpf)
	copyStart := time.Now()
	if r.f == nil {
		hash, n, st, err = w.fetchCopy(ctx, j, useBasis, tmpf, out)
	} else {
		hash, n, st, err = w.copyLocal(ctx, j, r, tmpf, out)
	}
	if err == nil {
		err = finish()
	}
	st.copying = time.Since(copyStart)
	if err != nil {
		return st, w.failedWrite(j, r, err, ctx.Err() == nil)
	}
	st.written = n
	if err := w.checkRead(j, r, n); err != nil {
		return st, err
	}
	if err := w.ap.ready(j.intent); err != nil {
		return st, err
	}
	var dst unix.Stat_t
	statted, err := w.ap.dst.finishFile(tmpf, dirfd, tmp, name, j.s, &dst)
	if err != nil {
		return st, &os.PathError{Op: "write", Path: w.ap.dst.root.Join(j.s.Path), Err: err}
	}
	committed = true
	made("rename", j.s.Path)
	j.s.Hash, j.s.HasHash = hash, true
	if statted || unix.Fstatat(dirfd, name, &dst, unix.AT_SYMLINK_NOFOLLOW) == nil {
		out := scan.FromStat(j.s.Path, &dst)
		out.Xattrs, out.Hash, out.HasHash = j.s.Xattrs, hash, true
		j.out = out
	}
	return st, nil
}

// localRead is a source file on this host, open for a whole-file copy.
type localRead struct {
	f      *fsx.File
	before *unix.Stat_t // nil: checked against the scan after the read
	size   int64        // what to read
}

// openLocal opens the source file of j directly: as scanned, or the
// careful way (send.Open), which takes the file as it is now.
func (w *worker) openLocal(j *fileJob) (localRead, error) {
	r := localRead{size: j.s.Size}
	var fresh *manifest.Entry
	var err error
	if j.careful || j.s.Ctime == 0 {
		r.f, r.before, fresh, err = send.Open(w.srcDirs, j.request())
	} else {
		r.f, err = send.OpenAsScanned(w.srcDirs, j.request())
	}
	if err != nil {
		if pe, ok := err.(*os.PathError); ok {
			pe.Path = w.ap.src.Join(j.s.Path)
		}
		return r, err
	}
	if r.before != nil {
		r.size = r.before.Size
	}
	if fresh != nil {
		// Changed since the scan: copy what is there now, with its metadata.
		w.ap.t.moved(j.s.Path, "changed during the pass")
		fresh.Xattrs = j.s.Xattrs
		*j.s = *fresh
	}
	return r, nil
}

// createTemp makes the file that j is written to in directory dirfd:
// unnamed (O_TMPFILE, tmp "") for a new file where the file system can,
// else under a temp name.
func (w *worker) createTemp(j *fileJob, dirfd int) (tmpf *tmpFile, tmp string, err error) {
	if j.d == nil && !w.ap.noTmpfile.Load() {
		tmpf, err = w.ap.dst.createAnon(dirfd, j.s.Mode)
		if err != nil {
			w.ap.noTmpfile.Store(true) // not on this file system: use names
		}
	}
	if tmpf == nil {
		tmpf, tmp, err = w.ap.dst.createTemp(dirfd)
	}
	if err != nil {
		return nil, "", &os.PathError{Op: "create temp in", Path: w.ap.dst.root.Join(manifest.Parent(j.s.Path)), Err: err}
	}
	return tmpf, tmp, nil
}

// copyLocal copies the source file r into tmpf (through out) and hashes it.
func (w *worker) copyLocal(ctx context.Context, j *fileJob, r localRead, tmpf *tmpFile, out io.Writer) (uint64, int64, xferStats, error) {
	var st xferStats
	h := xxhash.New()
	in := io.LimitReader(r.f, r.size)
	err := fsx.ErrNoDirect
	var n int64
	// Large files skip the page cache (fsx.CopyDirect says why).
	if r.size >= fsx.DirectMin && !w.ap.o.Sparse && !w.ap.o.NoDirectIO && !w.ap.noDirect.Load() {
		if w.dbuf == nil {
			w.dbuf = fsx.AlignedBuf(fsx.DirectBuf)
		}
		var refused bool
		n, refused, err = fsx.CopyDirect(ctx, tmpf.fd, in, h, w.dbuf)
		if refused {
			w.ap.noDirect.Store(true)
		}
	}
	if err == fsx.ErrNoDirect {
		n, err = copyBuf(ctx, io.MultiWriter(out, h), in, w.buf)
	}
	st.literal, st.wire = n, n+int64(len(j.s.Path))+32
	return h.Sum64(), n, st, err
}

// failedWrite returns the error of a copy that failed: errNotAsScanned
// when the file read directly is not what the scan saw (a directory now,
// say: the careful way tells what it is), a full file system named by its
// destination path.
func (w *worker) failedWrite(j *fileJob, r localRead, err error, live bool) error {
	if r.f != nil && r.before == nil && live {
		if same, serr := send.AsScanned(r.f, j.request(), r.size); serr == nil && !same {
			return errNotAsScanned
		}
	}
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return &os.PathError{Op: "write", Path: w.ap.dst.root.Join(j.s.Path), Err: err}
	}
	return err
}

// checkRead checks that the source file read directly (n bytes) did not
// move under the read.
func (w *worker) checkRead(j *fileJob, r localRead, n int64) error {
	switch {
	case r.f != nil && r.before == nil:
		same, err := send.AsScanned(r.f, j.request(), n)
		if err != nil {
			return err
		}
		if !same {
			return errNotAsScanned
		}
	case r.f != nil:
		same, err := send.Unchanged(r.f, j.s.Path, r.before, n)
		if err != nil {
			return err
		}
		if !same {
			return errChangedWhileRead
		}
	}
	return nil
}

// opLister is a reply that can hand its operations over as they are held
// in memory, instead of encoded for Read.
type opLister interface {
	// Ops returns the reply's operations on a basis of basisSize bytes.
	Ops(basisSize int64) delta.Ops
}

// fetchCopy asks the source for the file as a delta against the old
// destination copy (or the append fast path, or whole when there is no
// basis) and rebuilds it into tmp, exactly as a remote transfer does.
func (w *worker) fetchCopy(ctx context.Context, j *fileJob, useBasis bool, tmp *tmpFile, out io.Writer) (uint64, int64, xferStats, error) {
	var st xferStats
	req := j.request()
	var old *fsx.File
	var basisSize int64
	if useBasis {
		f, err := scan.OpenFile(w.dstDirs, j.d.Path)
		if err != nil {
			return 0, 0, st, err
		}
		defer f.Close()
		old, basisSize = f, j.d.Size
		w.appendRequest(j, req)
	}
	var sigBytes int64
	if bs, ok := w.ap.src.(basisSigner); ok && useBasis && bs.SignsBasis() {
		// The source signs the old copy its own way: hand it over.
		req.Mode, req.Basis, req.BasisSize = send.Delta, old, basisSize
		useBasis = false // no msync signature below
	}
	for {
		if useBasis && req.Mode != send.Append {
			// The receiver signs its old copy; the signature crosses the wire.
			sig, _, err := delta.Sign(ctx, io.NewSectionReader(old, 0, basisSize), basisSize, 0)
			if err != nil {
				return 0, 0, st, err
			}
			enc, _ := sig.MarshalBinary()
			sigBytes = int64(len(enc))
			if TestHooks.AfterSign != nil {
				TestHooks.AfterSign(j.d.Path)
			}
			req.Mode, req.Sig = send.Delta, sig
		}
		hash, n, res, err := w.rebuild(ctx, j, req, old, basisSize, out)
		if err != nil {
			return 0, n, st, err
		}
		if res.Status == send.PrefixChanged {
			// The old copy is no prefix of the file: a delta instead.
			if err := tmp.Rewind(); err != nil {
				return 0, n, st, err
			}
			if sw, ok := out.(*sparseWriter); ok {
				sw.off = 0
			}
			req.Mode = send.Delta
			continue
		}
		st.literal, st.matched = res.Stats.Literal, res.Stats.Matched
		st.wire = res.Stats.Literal + sigBytes + int64(len(j.s.Path)) + 32 + (res.Stats.Matched/(64<<10)+1)*8
		st.appended = req.Mode == send.Append
		st.delta = req.Mode == send.Delta
		return hash, n, st, nil
	}
}

// appendRequest asks for the tail only (send.Append) when the file grew
// and the old copy's hash is known: the source proves the old copy is its
// prefix.
func (w *worker) appendRequest(j *fileJob, req *send.Request) {
	oldHash, haveHash := j.d.Hash, j.d.HasHash
	if !haveHash && j.m != nil && j.m.HasHash && j.m.Size == j.d.Size && j.m.Mtime == j.d.Mtime {
		oldHash, haveHash = j.m.Hash, true
	}
	if haveHash && j.s.Size > j.d.Size {
		req.Mode, req.BasisSize, req.BasisHash = send.Append, j.d.Size, oldHash
	}
}

// rebuild sends req and applies the reply's operations on old (basisSize
// bytes; nil: none) to out. A reply with status PrefixChanged is returned
// without error, for the caller to ask again.
func (w *worker) rebuild(ctx context.Context, j *fileJob, req *send.Request, old *fsx.File, basisSize int64, out io.Writer) (uint64, int64, *send.Result, error) {
	reply, err := w.fetch(ctx, j, req)
	if err != nil {
		return 0, 0, nil, err
	}
	var basis io.ReaderAt = emptyReaderAt{}
	if old != nil {
		basis = old
	}
	var ops delta.Ops
	if l, ok := reply.(opLister); ok {
		ops = l.Ops(basisSize)
	} else {
		ops = delta.NewOpReader(reply, basisSize)
	}
	n, hash, aerr := delta.Apply(ctx, basis, ops, out)
	res, err := reply.Result()
	if err != nil {
		return 0, n, nil, err
	}
	if aerr != nil && res.Status == send.Failed && errors.Is(res.Err, io.ErrClosedPipe) {
		// The reply failed only because this worker stopped reading it
		// (Result closes a streamed reply's pipe): the cause is the
		// worker's own, a full disk say, which must stop the pass.
		return 0, n, nil, aerr
	}
	switch res.Status {
	case send.PrefixChanged:
		return 0, n, res, nil
	case send.Changed:
		return 0, n, nil, errChangedWhileRead
	case send.Failed:
		var pe *os.PathError
		if errors.As(res.Err, &pe) {
			e := *pe
			e.Path = w.ap.src.Join(j.s.Path)
			return 0, n, nil, &e
		}
		return 0, n, nil, res.Err
	}
	if aerr != nil {
		return 0, n, nil, aerr
	}
	if res.Fresh != nil {
		w.ap.t.moved(j.s.Path, "changed during the pass")
		fresh := *res.Fresh
		fresh.Xattrs = j.s.Xattrs
		*j.s = fresh
	}
	if n != j.s.Size {
		return 0, n, nil, errChangedWhileRead
	}
	return hash, n, res, nil
}

type emptyReaderAt struct{}

func (emptyReaderAt) ReadAt(p []byte, off int64) (int, error) { return 0, io.EOF }

func copyBuf(ctx context.Context, dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := src.Read(buf)
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
