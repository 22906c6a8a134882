// Package send is the sending half of a file transfer: it reads one file of
// a local tree and writes the delta operations (delta.OpWriter) that rebuild
// it at the receiver, whole, as an append to a proven prefix, or as a delta
// against the receiver's block signature. The same code runs in-process for
// local passes and behind msync's wire protocol for remote ones.
package send

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/msync/msync/delta"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"golang.org/x/sys/unix"
)

// Mode says how the receiver wants a file.
type Mode uint8

// The request modes (transport/wire has its own encoding of them).
const (
	Whole  Mode = 0 // all of it, as literals
	Append Mode = 1 // the receiver's old copy is BasisSize bytes hashing to BasisHash
	Delta  Mode = 2 // against Sig, the receiver's signature of its old copy
)

// Request asks for one file.
type Request struct {
	Path string
	// Want is the identity the receiver saw in the scan: size, mtime,
	// ctime and inode. When the file differs, Result.Fresh says how.
	Size         int64
	Mtime, Ctime int64
	Inode        uint64
	// Owner is the file's owner as the scan saw it, when HasOwner (a
	// request read from the wire has none): it decides whether the open
	// asks for O_NOATIME (scan.OpenOwned).
	Owner     uint32
	HasOwner  bool
	Mode      Mode
	BasisSize int64
	BasisHash uint64
	Sig       *delta.Signature
	// Basis is the receiver's old copy itself, for a source that signs it
	// in its own format (BasisSigner); it never crosses msync's wire.
	Basis io.ReaderAt
}

// RequestFor asks for the whole of the file e as a local scan saw it.
func RequestFor(e *manifest.Entry) *Request {
	return &Request{Path: e.Path, Size: e.Size, Mtime: e.Mtime, Ctime: e.Ctime, Inode: e.Inode, Owner: e.UID, HasOwner: true}
}

// BasisSigner is a source that wants the receiver's old copy (Request.Basis)
// rather than msync's signature of it: stock rsync, whose block sums differ.
type BasisSigner interface {
	SignsBasis() bool
}

// AheadFetcher is a source whose Fetch only queues a request, its answer
// arriving on the reply. The engine then asks for each new file as soon as
// it decides to copy it, ahead of the worker that will write it, so the
// sender is never idle waiting for a free worker (rsync's generator works
// this way).
type AheadFetcher interface {
	FetchesAhead() bool
}

// Status is the outcome of a request.
type Status uint8

// The statuses (transport/wire has its own encoding of them).
const (
	OK            Status = 0
	Changed       Status = 1 // the file moved while it was read: nothing usable was sent
	PrefixChanged Status = 2 // Append refused: ask again with a signature
	Failed        Status = 3 // Err says why
)

// Result describes what was sent.
type Result struct {
	Status Status
	// Fresh is the file as it was opened, when it is no longer what the
	// request wanted (same file, new size or times); nil otherwise.
	Fresh *manifest.Entry
	Stats delta.Stats
	Err   error
}

// TestHooks let tests change the source at exact moments of a transfer.
// They must stay nil outside tests.
var TestHooks struct {
	BeforeOpen func(path string) // before a source file is opened
	AfterRead  func(path string) // after its content was read, before the re-check
}

// File sends req.Path of the tree behind dirs to ops. The operations written
// end with delta's end marker only when the Result is OK; otherwise the
// receiver must discard what it received.
func File(ctx context.Context, dirs *fsx.Dirs, req *Request, ops io.Writer) *Result {
	f, before, fresh, err := Open(dirs, req)
	if err != nil {
		return &Result{Status: Failed, Err: err}
	}
	defer f.Close()
	res := &Result{Fresh: fresh}
	sink := delta.NewOpWriter(ops)
	// Read exactly the size seen at open: a file that grows meanwhile is
	// caught by the fstat below rather than sent torn.
	src := io.LimitReader(f, before.Size)
	switch {
	case req.Mode == Append:
		res.Stats, err = delta.Append(ctx, req.BasisSize, req.BasisHash, src, sink)
		if errors.Is(err, delta.ErrPrefixChanged) {
			return &Result{Status: PrefixChanged}
		}
	case req.Mode == Delta:
		res.Stats, err = delta.Diff(ctx, req.Sig, src, sink)
	default:
		res.Stats, err = delta.Diff(ctx, nil, src, sink)
	}
	if err != nil {
		return &Result{Status: Failed, Err: err}
	}
	same, err := Unchanged(f, req.Path, before, res.Stats.Size)
	if err != nil {
		return &Result{Status: Failed, Err: err}
	}
	if !same {
		return &Result{Status: Changed}
	}
	res.Status = OK
	return res
}

// Open opens the regular file req.Path for reading, never through a
// symlink, and returns its stat as opened and, when that is no longer the
// file req saw (size, times, inode), the file as it is now.
func Open(dirs *fsx.Dirs, req *Request) (*fsx.File, *unix.Stat_t, *manifest.Entry, error) {
	if TestHooks.BeforeOpen != nil {
		TestHooks.BeforeOpen(req.Path)
	}
	f, err := req.open(dirs)
	if err != nil {
		return nil, nil, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.Fd(), &st); err != nil {
		f.Close()
		return nil, nil, nil, &os.PathError{Op: "fstat", Path: req.Path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, nil, nil, fmt.Errorf("%s: no longer a regular file", req.Path)
	}
	var fresh *manifest.Entry
	// A compact scan (manifest.FlagCompact) carries no inode: Inode 0.
	if req.Inode != 0 && st.Ino != req.Inode || st.Size != req.Size || st.Mtim.Nano() != req.Mtime || st.Ctim.Nano() != req.Ctime {
		fresh = scan.FromStat(req.Path, &st)
	}
	return f, &st, fresh, nil
}

// OpenAsScanned opens the regular file req.Path for reading like Open, but
// does not look at it: the caller reads req.Size bytes and then asks
// AsScanned whether that was the file the scan saw, unchanged since. That
// is one fstat per file where Open and Unchanged make two; when AsScanned
// says no, the caller starts again with Open, which copies the file as it
// is now. req must carry the scan's ctime.
func OpenAsScanned(dirs *fsx.Dirs, req *Request) (*fsx.File, error) {
	if TestHooks.BeforeOpen != nil {
		TestHooks.BeforeOpen(req.Path)
	}
	return req.open(dirs)
}

func (req *Request) open(dirs *fsx.Dirs) (*fsx.File, error) {
	if req.HasOwner {
		return scan.OpenOwned(dirs, req.Path, req.Owner)
	}
	return scan.OpenFile(dirs, req.Path)
}

// AsScanned reports whether f, opened by OpenAsScanned and read to n
// bytes, is the regular file req describes (inode, size, mtime, ctime) and
// has not changed since the scan: its ctime moves with any write, so the n
// bytes are the content the scan saw.
func AsScanned(f *fsx.File, req *Request, n int64) (bool, error) {
	if TestHooks.AfterRead != nil {
		TestHooks.AfterRead(req.Path)
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.Fd(), &st); err != nil {
		return false, &os.PathError{Op: "fstat", Path: req.Path, Err: err}
	}
	return st.Mode&unix.S_IFMT == unix.S_IFREG && (req.Inode == 0 || st.Ino == req.Inode) &&
		st.Size == req.Size && st.Mtim.Nano() == req.Mtime && st.Ctim.Nano() == req.Ctime && n == req.Size, nil
}

// Unchanged reports whether f, of which n bytes were read, is still the
// file it was when opened (before): a file that moved while it was read
// must not be used.
func Unchanged(f *fsx.File, path string, before *unix.Stat_t, n int64) (bool, error) {
	if TestHooks.AfterRead != nil {
		TestHooks.AfterRead(path)
	}
	var after unix.Stat_t
	if err := unix.Fstat(f.Fd(), &after); err != nil {
		return false, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	return after.Size == before.Size && after.Mtim == before.Mtim && n == before.Size, nil
}
