package manifest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// File layout:
//
//	header: "MSYNCMAN" | version uint16 LE | flags uint16 LE
//	body (zstd stream when FlagZstd is set, else plain): records
//	record: tag byte | uvarint payload length | payload
//
// Entry records carry paths prefix-compressed against the previous entry. The
// last record is the trailer: the number of entries and the xxhash64 of every
// body byte before the trailer's tag. Nothing may follow it.
const (
	magic = "MSYNCMAN"

	// Version is the format version this package writes.
	Version = 1

	// FlagZstd: the body is a zstd stream.
	FlagZstd = 1 << 0
	// FlagXXH64: content hashes are xxhash64.
	FlagXXH64 = 1 << 1

	// FlagCompact: for streams to another host. Device and inode are
	// stored only for regular files with more than one link (what hard link
	// detection needs), and with FlagLinks for every other non-directory
	// with more than one link too; the other entries read back with zero
	// device and inode.
	FlagCompact = 1 << 2

	// FlagDiff: a compact stream that lists only what changed against a
	// base scan both ends hold: new or changed entries, and Gone entries
	// for paths that disappeared (see Diff streams in transport/remote).
	FlagDiff = 1 << 3

	// FlagIdentity: the body's first record is an identity record (see
	// identity.go), which the trailer's checksum covers.
	FlagIdentity = 1 << 4

	// FlagLinks: a compact stream that stores device and inode of every
	// non-directory with more than one link (hard-linked symlinks, fifos,
	// sockets and devices), not only of regular files. Compact writers
	// always set it; streams without it (older writers) read back such
	// entries without an inode, which groups them with nothing.
	FlagLinks = 1 << 5

	knownFlags = FlagZstd | FlagXXH64 | FlagCompact | FlagDiff | FlagIdentity | FlagLinks

	tagEntry    = 0x01
	tagIdentity = 0x02
	tagTrailer  = 0xFF

	maxRecord     = 2 << 20
	maxTargetLen  = 4096
	maxXattrs     = 1024
	maxXattrName  = 255
	maxXattrBytes = 1 << 20
)

// compactID reports whether a compact stream stores e's device and inode:
// for a regular file with more than one link, and with FlagLinks (all) for
// any other non-directory with more than one link.
func compactID(e *Entry, all bool) bool {
	return e.Nlink > 1 && (e.Type == TypeFile || all && e.Type != TypeDir)
}

// ErrCorrupt is wrapped by every error that reports a malformed manifest.
var ErrCorrupt = errors.New("corrupt manifest")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Writer writes a sorted stream of entries.
type Writer struct {
	w       io.Writer
	zw      *zstd.Encoder
	bw      *bufio.Writer
	digest  *xxhash.Digest
	prev    string
	count   uint64
	started bool
	buf     []byte
	hdr     [1 + binary.MaxVarintLen64]byte
	closed  bool
	compact bool
	links   bool // FlagLinks
	diff    bool
	sum     uint64
}

// NewWriter writes the header to w and returns a Writer for the body. Close
// must be called to write the trailer; it does not close w.
func NewWriter(w io.Writer) (*Writer, error) { return newWriter(w, FlagZstd|FlagXXH64) }

// NewStateWriter is NewWriter without compression, for the manifests a state
// directory keeps and this host reads back. On a real scale-1.0 tree (137k
// entries) zstd took 350 of the 500 ns an entry costs to write, and halved
// the size (38 bytes an entry instead of 75): a catch-up writes both
// manifests again after its first change, so compression cost it about
// 0.1 s of CPU to save 10 MB of local disk.
func NewStateWriter(w io.Writer) (*Writer, error) { return newWriter(w, FlagXXH64) }

// NewCompactWriter is NewWriter for a stream to another host (FlagCompact):
// smaller, without the inode numbers a state manifest keeps.
func NewCompactWriter(w io.Writer) (*Writer, error) {
	return newWriter(w, FlagZstd|FlagXXH64|FlagCompact|FlagLinks)
}

// NewDiffWriter is NewCompactWriter for a diff stream (FlagDiff): entries
// with Gone set record deletions.
func NewDiffWriter(w io.Writer) (*Writer, error) {
	return newWriter(w, FlagZstd|FlagXXH64|FlagCompact|FlagDiff|FlagLinks)
}

func newWriter(w io.Writer, flags uint16) (*Writer, error) {
	var hdr [12]byte
	copy(hdr[:], magic)
	binary.LittleEndian.PutUint16(hdr[8:], Version)
	binary.LittleEndian.PutUint16(hdr[10:], flags)
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("write manifest header: %w", err)
	}
	mw := &Writer{w: w, digest: xxhash.New(), compact: flags&FlagCompact != 0, links: flags&FlagLinks != 0, diff: flags&FlagDiff != 0}
	if flags&FlagZstd == 0 {
		mw.bw = bufio.NewWriterSize(w, 64<<10)
		return mw, nil
	}
	// A 256 KiB window compresses manifests as well as the default (their
	// redundancy is between neighbouring records) and halves the encoder's
	// time, most of which went to allocating and clearing history buffers.
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(256<<10), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	mw.zw, mw.bw = zw, bufio.NewWriterSize(zw, 64<<10)
	return mw, nil
}

// Add appends e. Entries must be added in strictly increasing Compare order.
func (w *Writer) Add(e *Entry) error {
	if w.closed {
		return errors.New("manifest writer: Add after Close")
	}
	if err := ValidPath(e.Path); err != nil {
		return fmt.Errorf("manifest writer: %w", err)
	}
	if w.started && Compare(w.prev, e.Path) >= 0 {
		return fmt.Errorf("manifest writer: %q added after %q: entries must be sorted and unique", e.Path, w.prev)
	}
	if !e.Type.Valid() {
		return fmt.Errorf("manifest writer: %q: invalid type %d", e.Path, e.Type)
	}
	if len(e.LinkTarget) > maxTargetLen {
		return fmt.Errorf("manifest writer: %q: link target longer than %d bytes", e.Path, maxTargetLen)
	}
	if len(e.Xattrs) > maxXattrs {
		return fmt.Errorf("manifest writer: %q: more than %d xattrs", e.Path, maxXattrs)
	}
	shared := 0
	for shared < len(w.prev) && shared < len(e.Path) && w.prev[shared] == e.Path[shared] {
		shared++
	}
	b := w.buf[:0]
	b = binary.AppendUvarint(b, uint64(shared))
	b = binary.AppendUvarint(b, uint64(len(e.Path)-shared))
	b = append(b, e.Path[shared:]...)
	b = append(b, byte(e.Type))
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, uint64(e.UID))
	b = binary.AppendUvarint(b, uint64(e.GID))
	if e.Size < 0 {
		return fmt.Errorf("manifest writer: %q: negative size", e.Path)
	}
	b = binary.AppendUvarint(b, uint64(e.Size))
	b = binary.AppendVarint(b, e.Mtime)
	if w.compact {
		b = binary.AppendVarint(b, e.Ctime)
		b = binary.AppendUvarint(b, uint64(e.Nlink))
		b = binary.AppendUvarint(b, e.Rdev)
		if compactID(e, w.links) {
			b = binary.AppendUvarint(b, e.Dev)
			b = binary.AppendUvarint(b, e.Inode)
		}
	} else {
		b = binary.AppendVarint(b, e.Ctime)
		b = binary.AppendUvarint(b, e.Dev)
		b = binary.AppendUvarint(b, e.Inode)
		b = binary.AppendUvarint(b, uint64(e.Nlink))
		b = binary.AppendUvarint(b, e.Rdev)
	}
	var flags byte
	if e.HasHash {
		flags |= 1
	}
	if e.Incomplete {
		flags |= 2
	}
	if e.Gone {
		if !w.diff {
			return fmt.Errorf("manifest writer: %q: a deletion outside a diff stream", e.Path)
		}
		flags |= 4
	}
	b = append(b, flags)
	if e.HasHash {
		b = binary.LittleEndian.AppendUint64(b, e.Hash)
	}
	b = binary.AppendUvarint(b, uint64(len(e.LinkTarget)))
	b = append(b, e.LinkTarget...)
	b = binary.AppendUvarint(b, uint64(len(e.Xattrs)))
	total := 0
	for _, x := range e.Xattrs {
		if len(x.Name) == 0 || len(x.Name) > maxXattrName {
			return fmt.Errorf("manifest writer: %q: bad xattr name length %d", e.Path, len(x.Name))
		}
		total += len(x.Name) + len(x.Value)
		b = binary.AppendUvarint(b, uint64(len(x.Name)))
		b = append(b, x.Name...)
		b = binary.AppendUvarint(b, uint64(len(x.Value)))
		b = append(b, x.Value...)
	}
	if total > maxXattrBytes {
		return fmt.Errorf("manifest writer: %q: xattrs exceed %d bytes", e.Path, maxXattrBytes)
	}
	if len(b) > maxRecord {
		return fmt.Errorf("manifest writer: %q: record exceeds %d bytes", e.Path, maxRecord)
	}
	w.buf = b
	if err := w.record(tagEntry, b); err != nil {
		return err
	}
	w.prev = e.Path
	w.started = true
	w.count++
	return nil
}

func (w *Writer) record(tag byte, payload []byte) error {
	hdr := &w.hdr // a field: a local array would escape through bw.Write
	hdr[0] = tag
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(payload)))
	if tag != tagTrailer {
		w.digest.Write(hdr[:n])
		w.digest.Write(payload)
	}
	if _, err := w.bw.Write(hdr[:n]); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if _, err := w.bw.Write(payload); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// Flush pushes the entries added so far through the compressor to the
// underlying writer, for a reader at the far end of a stream.
func (w *Writer) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if w.zw == nil {
		return nil
	}
	if err := w.zw.Flush(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// Sum identifies the entries written (whatever the compression): the
// checksum in the trailer. Valid after Close.
func (w *Writer) Sum() uint64 { return w.sum }

// Count returns the number of entries added so far.
func (w *Writer) Count() uint64 { return w.count }

// Close writes the trailer and flushes the compressor. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.sum = w.digest.Sum64()
	t := binary.AppendUvarint(nil, w.count)
	t = binary.LittleEndian.AppendUint64(t, w.sum)
	if err := w.record(tagTrailer, t); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if w.zw == nil {
		return nil
	}
	if err := w.zw.Close(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// Reader reads a manifest written by Writer, validating order, bounds and
// the trailer checksum. It implements Iterator.
type Reader struct {
	br      *bufio.Reader
	zr      *zstd.Decoder
	digest  *xxhash.Digest
	prev    string
	count   uint64
	buf     []byte
	skip    int // bytes of that record still in br, for release
	done    bool
	err     error
	compact bool
	links   bool // FlagLinks
	diff    bool
	ident   []byte // the identity record (FlagIdentity), nil without
}

// Diff reports whether this is a diff stream (FlagDiff).
func (r *Reader) Diff() bool { return r.diff }

// AllLinks reports whether the stream tells every hard-linked object's
// device and inode: it is not compact, or compact with FlagLinks.
func (r *Reader) AllLinks() bool { return !r.compact || r.links }

// NewReader reads and checks the header of r.
func NewReader(r io.Reader) (*Reader, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, corrupt("truncated header")
		}
		return nil, fmt.Errorf("read manifest header: %w", err)
	}
	if string(hdr[:8]) != magic {
		return nil, corrupt("not an msync manifest (bad magic)")
	}
	v := binary.LittleEndian.Uint16(hdr[8:])
	if v != Version {
		return nil, fmt.Errorf("%w: manifest version %d, this msync reads version %d", ErrCorrupt, v, Version)
	}
	flags := binary.LittleEndian.Uint16(hdr[10:])
	if flags&^knownFlags != 0 {
		return nil, corrupt("unknown flags %#x", flags)
	}
	if flags&FlagXXH64 == 0 {
		return nil, corrupt("unsupported content hash algorithm (flags %#x)", flags)
	}
	if flags&FlagDiff != 0 && flags&FlagCompact == 0 {
		return nil, corrupt("diff flag without compact flag")
	}
	rd := &Reader{digest: xxhash.New(), compact: flags&FlagCompact != 0, links: flags&FlagLinks != 0, diff: flags&FlagDiff != 0}
	body := r
	if flags&FlagZstd != 0 {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderMaxWindow(8<<20))
		if err != nil {
			return nil, corrupt("zstd: %v", err)
		}
		rd.zr = zr
		body = zr
	}
	rd.br = bufio.NewReaderSize(body, 64<<10)
	if flags&FlagIdentity != 0 {
		if err := rd.readIdentity(); err != nil {
			rd.Close()
			return nil, err
		}
	}
	return rd, nil
}

// Close releases the decompressor. It does not close the underlying reader.
func (r *Reader) Close() {
	if r.zr != nil {
		r.zr.Close()
		r.zr = nil
	}
}

// Next returns the next entry, or io.EOF after the trailer was verified.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		if err != io.EOF && !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("read manifest: %w", err)
		}
		r.err = err
	}
	return e, err
}

func (r *Reader) next() (*Entry, error) {
	if r.done {
		return nil, io.EOF
	}
	tag, p, err := r.record()
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagTrailer:
		d := decoder{b: p}
		count := d.uvarint()
		sum := d.u64()
		if d.err != nil || len(d.b) != 0 {
			return nil, corrupt("malformed trailer")
		}
		if count != r.count {
			return nil, corrupt("trailer counts %d entries, read %d", count, r.count)
		}
		if sum != r.digest.Sum64() {
			return nil, corrupt("checksum mismatch")
		}
		r.release()
		if _, err := r.br.ReadByte(); err != io.EOF {
			if err != nil {
				return nil, r.eof(err)
			}
			return nil, corrupt("data after trailer")
		}
		r.done = true
		return nil, io.EOF
	case tagEntry:
	default:
		return nil, corrupt("unknown record tag %#x", tag)
	}
	e, err := r.decodeEntry(p)
	if err != nil {
		return nil, err
	}
	r.release()
	r.prev = e.Path
	r.count++
	return e, nil
}

// record reads the next record's tag and length, adds any record
// but the trailer to the digest (the trailer holds the digest of the entries)
// and returns the tag and the record's body. A record that fits in br's buffer is
// decoded where it lies: the body is br's own bytes, which release discards
// once it is decoded (nothing decoded may keep a reference to them). A
// larger one is copied into r.buf.
func (r *Reader) record() (byte, []byte, error) {
	// The header: a tag byte and the body's length as a uvarint.
	hdr, err := r.br.Peek(1 + binary.MaxVarintLen64)
	if len(hdr) == 0 {
		return 0, nil, r.eof(err)
	}
	n, k := binary.Uvarint(hdr[1:])
	switch {
	case k == 0:
		// The input ended (or failed: err says which) inside the length;
		// a full header would have held a whole uvarint or overflowed.
		return 0, nil, r.eof(err)
	case k < 0:
		return 0, nil, corrupt("record length overflows")
	case n > maxRecord:
		return 0, nil, corrupt("record of %d bytes exceeds %d", n, maxRecord)
	}
	tag := hdr[0]
	hn := 1 + k
	if total := hn + int(n); total <= r.br.Size() {
		rec, err := r.br.Peek(total)
		if len(rec) < total {
			return 0, nil, r.eof(err)
		}
		if tag != tagTrailer {
			r.digest.Write(rec)
		}
		r.skip = total
		return tag, rec[hn:], nil
	}
	if tag != tagTrailer {
		r.digest.Write(hdr[:hn])
	}
	r.br.Discard(hn)
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.br, p); err != nil {
		return 0, nil, r.eof(err)
	}
	if tag != tagTrailer {
		r.digest.Write(p)
	}
	return tag, p, nil
}

// release discards the record that record left in br, once it is decoded.
func (r *Reader) release() {
	if r.skip > 0 {
		r.br.Discard(r.skip)
		r.skip = 0
	}
}

func (r *Reader) eof(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return corrupt("truncated (no trailer after %d entries)", r.count)
	}
	if errors.Is(err, zstd.ErrMagicMismatch) || errors.Is(err, zstd.ErrReservedBlockType) ||
		errors.Is(err, zstd.ErrCRCMismatch) || errors.Is(err, zstd.ErrBlockTooSmall) {
		return corrupt("zstd: %v", err)
	}
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		// Every other decompression error also means the file is damaged.
		return corrupt("%v", err)
	}
	return err
}

func (r *Reader) decodeEntry(p []byte) (*Entry, error) {
	d := decoder{b: p}
	shared := d.uvarint()
	suffix := d.uvarint()
	if d.err == nil && (shared > uint64(len(r.prev)) || suffix > MaxPathLen || shared+suffix > MaxPathLen) {
		return nil, corrupt("bad path lengths after %q", r.prev)
	}
	s := d.bytes(suffix)
	if d.err != nil {
		return nil, corrupt("short entry record after %q", r.prev)
	}
	e := &Entry{Path: r.prev[:shared] + string(s)}
	// The previous path was valid, so only the components from the one the
	// suffix starts in need checking: decoding stays linear in the record
	// size, not the path length (a small hostile file must not cost
	// quadratic time over deep paths).
	if r.count == 0 {
		if err := ValidPath(e.Path); err != nil {
			return nil, corrupt("%v", err)
		}
	} else {
		if err := validTail(e.Path, int(shared)); err != nil {
			return nil, corrupt("%v", err)
		}
		if compareFrom(r.prev, e.Path, int(shared)) >= 0 {
			return nil, corrupt("%q follows %q: entries out of order or duplicated", e.Path, r.prev)
		}
	}
	if r.count == 0 && shared != 0 {
		return nil, corrupt("first entry shares a prefix")
	}
	e.Type = Type(d.byte())
	e.Mode = uint32(d.bounded(0o7777))
	e.UID = uint32(d.bounded(1<<32 - 1))
	e.GID = uint32(d.bounded(1<<32 - 1))
	e.Size = int64(d.bounded(1<<62 - 1))
	e.Mtime = d.varint()
	e.Ctime = d.varint()
	if r.compact {
		e.Nlink = uint32(d.bounded(1<<32 - 1))
		e.Rdev = d.uvarint()
		if compactID(e, r.links) {
			e.Dev = d.uvarint()
			e.Inode = d.uvarint()
		}
	} else {
		e.Dev = d.uvarint()
		e.Inode = d.uvarint()
		e.Nlink = uint32(d.bounded(1<<32 - 1))
		e.Rdev = d.uvarint()
	}
	flags := d.byte()
	if flags&^7 != 0 || (flags&4 != 0 && !r.diff) {
		d.fail()
	}
	e.Incomplete = flags&2 != 0
	e.Gone = flags&4 != 0
	if flags&1 != 0 {
		e.Hash = d.u64()
		e.HasHash = true
	}
	tl := d.bounded(maxTargetLen)
	e.LinkTarget = string(d.bytes(tl))
	nx := d.bounded(maxXattrs)
	total := uint64(0)
	for i := uint64(0); i < nx && d.err == nil; i++ {
		nl := d.bounded(maxXattrName)
		name := string(d.bytes(nl))
		vl := d.bounded(maxXattrBytes)
		val := d.bytes(vl)
		total += nl + vl
		if total > maxXattrBytes || (d.err == nil && nl == 0) {
			d.fail()
		}
		e.Xattrs = append(e.Xattrs, Xattr{Name: name, Value: append([]byte(nil), val...)})
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, corrupt("malformed entry %q", e.Path)
	}
	if !e.Type.Valid() {
		return nil, corrupt("entry %q has invalid type %d", e.Path, e.Type)
	}
	if e.Type != TypeSymlink && e.LinkTarget != "" {
		return nil, corrupt("entry %q: link target on a %s", e.Path, e.Type)
	}
	if e.Path == "" && e.Type != TypeDir {
		return nil, corrupt("root entry is a %s, not a directory", e.Type)
	}
	return e, nil
}

// validTail checks p, a valid path's first `from` bytes plus a suffix.
func validTail(p string, from int) error {
	if len(p) > MaxPathLen {
		return fmt.Errorf("path of %d bytes exceeds %d", len(p), MaxPathLen)
	}
	start := strings.LastIndexByte(p[:from], '/') + 1 // the component `from` is in
	if start == 0 {
		return ValidPath(p)
	}
	tail := p[start:]
	if tail == "" {
		return fmt.Errorf("path %q has an empty component", p)
	}
	if err := ValidPath(tail); err != nil {
		return fmt.Errorf("path %q: %w", p, err)
	}
	return nil
}

// compareFrom is Compare(a, b) for two paths known to agree on their
// first i bytes.
func compareFrom(a, b string, i int) int {
	return Compare(a[i:], b[i:])
}

// decoder reads fields from a bounded buffer; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrCorrupt
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bounded(max uint64) uint64 {
	v := d.uvarint()
	if v > max {
		d.fail()
		return 0
	}
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}
