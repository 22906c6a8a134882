package rsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/msync/msync/delta"
	"github.com/msync/msync/internal/md4"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
)

// maxSendToken is the largest data token msync sends: rsync's CHUNK_SIZE.
// Receivers from 3.2.7 on refuse longer ones ("invalid uncompressed token
// length").
const maxSendToken = 32 << 10

// sendable is a file list msync sends, in the order the receiver indexes
// it (protocol 27: bytewise on the names as sent).
type sendable interface {
	len() int
	// at returns the entry at index ndx and its name as sent. The entry
	// may be built for the call: it is not kept.
	at(ndx int) (wire string, e *manifest.Entry)
}

// sendFile is one entry of a file list msync sends.
type sendFile struct {
	e    *manifest.Entry
	wire string // the name as sent: "." for the root
}

// sendFiles is a file list of entries held in memory.
type sendFiles []*sendFile

func (fs sendFiles) len() int { return len(fs) }

func (fs sendFiles) at(ndx int) (string, *manifest.Entry) { return fs[ndx].wire, fs[ndx].e }

// sendList orders entries as the receiver will index them (protocol 27:
// bytewise on the names as sent). With a prefix, names are sent below it
// and the top directory as the prefix itself (rsync's "dir" without a
// trailing slash); without, the top directory is ".".
func sendList(entries []*manifest.Entry, prefix string) sendFiles {
	files := make(sendFiles, 0, len(entries))
	for _, e := range entries {
		w := e.Path
		switch {
		case prefix == "" && w == "":
			w = "."
		case prefix != "" && w == "":
			w = prefix
		case prefix != "":
			w = prefix + "/" + w
		}
		files = append(files, &sendFile{e: e, wire: w})
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].wire < files[j].wire })
	return files
}

func (e *encoder) longint(v int64) {
	if v >= 0 && v <= 0x7fffffff {
		e.int32(int32(v))
		return
	}
	e.int32(-1)
	e.int32(int32(uint32(v)))
	e.int32(int32(uint32(uint64(v) >> 32)))
}

// wireMode is an entry's st_mode.
func wireMode(e *manifest.Entry) uint32 {
	var t uint32
	switch e.Type {
	case manifest.TypeFile:
		t = sIFREG
	case manifest.TypeDir:
		t = sIFDIR
	case manifest.TypeSymlink:
		t = sIFLNK
	case manifest.TypeFifo:
		t = sIFIFO
	case manifest.TypeSocket:
		t = sIFSOCK
	case manifest.TypeChar:
		t = sIFCHR
	case manifest.TypeBlock:
		t = sIFBLK
	}
	return t | e.Mode&permBits
}

// writeFileList sends files as a protocol 27 file list (-lHogDtpr,
// numeric ids) with rsync's end marker and the I/O error flag.
func (e *encoder) writeFileList(files sendable, ioError int32) error {
	return e.writeFileListAs(files, allFields, ioError)
}

// omit reports whether o leaves m out of the list (rsync without -l skips
// symlinks, without -D devices and specials).
func (o listOptions) omit(m *manifest.Entry) bool {
	switch m.Type {
	case manifest.TypeSymlink:
		return !o.links
	case manifest.TypeChar, manifest.TypeBlock, manifest.TypeFifo, manifest.TypeSocket:
		return !o.devices
	}
	return false
}

// writeFileListAs sends files with o's fields, then o's (empty) name lists
// and the I/O error flag. Entries o leaves out must not be in files.
func (e *encoder) writeFileListAs(files sendable, o listOptions, ioError int32) error {
	for i := range files.len() {
		wire, m := files.at(i)
		if len(wire) > maxPath || len(m.LinkTarget) > maxPath {
			return fmt.Errorf("%q: name or symlink target longer than %d bytes", m.Path, maxPath)
		}
		flags := byte(xmitLongName)
		if m.Path == "" && m.Type == manifest.TypeDir {
			flags |= xmitTopDir
		}
		e.w.WriteByte(flags)
		e.int32(int32(len(wire)))
		e.w.WriteString(wire)
		size := int64(0)
		if m.Type == manifest.TypeFile {
			size = m.Size
		}
		e.longint(size)
		sec := m.Mtime / 1e9
		if m.Mtime < 0 && m.Mtime%1e9 != 0 {
			sec--
		}
		e.int32(int32(sec))
		e.int32(int32(wireMode(m)))
		if o.uid {
			e.int32(int32(m.UID))
		}
		if o.gid {
			e.int32(int32(m.GID))
		}
		switch m.Type {
		case manifest.TypeChar, manifest.TypeBlock, manifest.TypeFifo, manifest.TypeSocket:
			e.int32(int32(m.Rdev))
		case manifest.TypeSymlink:
			e.int32(int32(len(m.LinkTarget)))
			e.w.WriteString(m.LinkTarget)
		case manifest.TypeFile:
			if o.hardLinks {
				e.longint(int64(m.Dev))
				e.longint(int64(m.Inode))
			}
		}
	}
	e.w.WriteByte(0)
	for range o.idLists {
		e.int32(0)
	}
	e.int32(ioError)
	return e.w.Flush()
}

// sentFile reports one file the receiver asked for.
type sentFile struct {
	ndx     int32 // its index in the file list
	e       *manifest.Entry
	literal int64
	matched int64
	err     error // nil when sent and unchanged
}

// serveRequests answers the receiver's requests (protocol 27: an index, a
// sum head, block sums) with the file matched against those blocks (data
// tokens and block references) and its MD4, until the receiver ends the
// redo phase. A file that changes while it is
// read is sent with a wrong checksum, so that the receiver discards it.
func serveRequests(ctx context.Context, d *decoder, e *encoder, files sendable, local *tree.Local, seed int32, done func(sentFile)) error {
	phase := 0
	for {
		ndx, err := d.int32()
		if err != nil {
			return fmt.Errorf("reading the receiver's request: %w", err)
		}
		if ndx == -1 {
			phase++
			e.int32(-1)
			if err := e.w.Flush(); err != nil {
				return err
			}
			if phase > 1 {
				return nil
			}
			continue
		}
		var f *manifest.Entry
		if ndx >= 0 && int(ndx) < files.len() {
			_, f = files.at(int(ndx))
		}
		if f == nil || f.Type != manifest.TypeFile {
			return protoErr("the receiver asked for index %d, not a file of the %d sent", ndx, files.len())
		}
		var head [4]int32
		for i := range head {
			if head[i], err = d.int32(); err != nil {
				return err
			}
		}
		count, blen, s2len, rem := head[0], head[1], head[2], head[3]
		if count < 0 || count > maxRecvBlocks || blen < 0 || blen > 1<<29 || s2len < 0 || s2len > md4.Size || rem < 0 || rem > blen {
			return protoErr("sum head %v", head)
		}
		var table *blockTable
		if count > 0 {
			if blen < 1 || int64(count) > (int64(1)<<40)/int64(blen)+1 {
				return protoErr("sum head %v", head)
			}
			if table, err = readSums(d, sumHead{count: count, blen: blen, s2len: s2len, rem: rem}); err != nil {
				return err
			}
		}
		res := sendOne(ctx, e, local, f, ndx, head, seed, table)
		if res.err != nil && !res.started {
			done(sentFile{ndx: ndx, e: f, err: res.err})
			continue
		}
		if res.wireErr != nil {
			return res.wireErr
		}
		done(sentFile{ndx: ndx, e: f, literal: res.literal, matched: res.matched, err: res.err})
	}
}

type sendResult struct {
	started bool  // the index went out
	literal int64 // data bytes sent
	matched int64 // bytes the receiver copied from its old copy
	err     error // the file could not be sent as it is
	wireErr error // the connection failed
}

// sendOne sends one requested file.
func sendOne(ctx context.Context, e *encoder, local *tree.Local, f *manifest.Entry, ndx int32, head [4]int32, seed int32, table *blockTable) sendResult {
	var r sendResult
	reply, err := local.Fetch(ctx, send.RequestFor(f))
	if err != nil {
		r.err = err
		return r
	}
	ops := delta.NewOpReader(reply, 0)
	op, err := ops.Next()
	if err != nil {
		res, _ := reply.Result()
		if res != nil && res.Err != nil {
			err = res.Err
		}
		r.err = err
		return r
	}
	r.started = true
	e.int32(ndx)
	for _, v := range head {
		e.int32(v)
	}
	h := md4.New()
	var sb [4]byte
	sb[0], sb[1], sb[2], sb[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	h.Write(sb[:])
	// emit sends literal data in tokens of at most 32 KiB, then a block
	// reference when block >= 0.
	emit := func(lit []byte, block int32) error {
		for len(lit) > 0 {
			n := min(len(lit), maxSendToken)
			e.int32(int32(n))
			if _, err := e.w.Write(lit[:n]); err != nil {
				return err
			}
			r.literal += int64(n)
			lit = lit[n:]
		}
		if block >= 0 {
			e.int32(-(block + 1))
			_, l := table.head.blockAt(block)
			r.matched += l
		}
		return nil
	}
	var m *matcher
	if table != nil {
		m = &matcher{t: table, seed: seed, emit: emit}
	}
	for ; err == nil && op.Kind == delta.OpLiteral; op, err = ops.Next() {
		h.Write(op.Data)
		var werr error
		if m != nil {
			werr = m.write(op.Data)
		} else {
			werr = emit(op.Data, -1)
		}
		if werr != nil {
			reply.Close()
			r.wireErr = werr
			return r
		}
	}
	if m != nil && err == nil {
		if werr := m.close(); werr != nil {
			reply.Close()
			r.wireErr = werr
			return r
		}
	}
	res, _ := reply.Result()
	switch {
	case err != nil:
		r.err = err
	case op.Kind != delta.OpEnd:
		r.err = fmt.Errorf("unexpected %v operation in a whole-file send", op.Kind)
	case res == nil || res.Status == send.Changed:
		r.err = errors.New("changed while it was read")
	case res.Status != send.OK:
		r.err = res.Err
		if r.err == nil {
			r.err = errors.New("could not be read")
		}
	}
	sum := h.Sum(nil)
	if r.err != nil {
		sum[0] ^= 0xff // the receiver discards the file and asks again
	}
	e.int32(0)
	e.w.Write(sum)
	return r
}

// scanAll scans the local tree into memory, in manifest order.
func scanAll(ctx context.Context, local *tree.Local, exclude []string) ([]*manifest.Entry, []scan.Problem, error) {
	sc, err := local.Scan(ctx, tree.ScanConfig{Exclude: exclude})
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	var out []*manifest.Entry
	for {
		e, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("source: %w", err)
		}
		out = append(out, e)
	}
	return out, sc.Problems(), nil
}
