package rsync

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"

	"github.com/msync/msync/internal/md4"
)

// rsync's block checksums (protocol 27): a weak sum over signed bytes,
// s1 = sum of the bytes and s2 = sum of the running s1, packed as
// s1&0xffff | s2<<16; and a strong sum, MD4 of the block followed by the
// checksum seed (when the seed is not zero), cut to s2length bytes.

// weakSum is rsync's get_checksum1.
func weakSum(p []byte) uint32 {
	var s1, s2 uint32
	for _, b := range p {
		s1 += uint32(int32(int8(b)))
		s2 += s1
	}
	return s1&0xffff | s2<<16
}

// strongSum is rsync's get_checksum2 for protocol 27 (MD4).
func strongSum(p []byte, seed int32) [md4.Size]byte {
	return strongSumWith(md4.New(), p, seed)
}

// strongSumWith is strongSum on a hash the caller reuses.
func strongSumWith(h hash.Hash, p []byte, seed int32) [md4.Size]byte {
	h.Reset()
	h.Write(p)
	if seed != 0 {
		var s [4]byte
		binary.LittleEndian.PutUint32(s[:], uint32(seed))
		h.Write(s[:])
	}
	var out [md4.Size]byte
	h.Sum(out[:0])
	return out
}

// Limits of a sum head, as rsync 3.x checks them for protocol 27.
const (
	minBlock     = 700     // rsync's BLOCK_SIZE
	maxBlock     = 1 << 29 // OLD_MAX_BLOCK_SIZE
	maxSumBlocks = 1 << 24
)

// blockLength is rsync's choice of block size for a basis of n bytes:
// about its square root, a multiple of 8, at least 700.
func blockLength(n int64) int32 {
	if n <= minBlock*minBlock {
		return minBlock
	}
	b := int64(math.Sqrt(float64(n))) &^ 7
	return int32(min(max(b, minBlock), maxBlock))
}

// sumHead describes block sums: count blocks of blen bytes, the last of
// rem bytes when rem is not zero, strong sums of s2len bytes.
type sumHead struct {
	count, blen, s2len, rem int32
}

func headFor(n int64) sumHead {
	h := sumHead{blen: blockLength(n), s2len: md4.Size}
	h.count = int32((n + int64(h.blen) - 1) / int64(h.blen))
	h.rem = int32(n % int64(h.blen))
	return h
}

// blockAt is the offset and length of block i.
func (h sumHead) blockAt(i int32) (int64, int64) {
	n := int64(h.blen)
	if i == h.count-1 && h.rem != 0 {
		n = int64(h.rem)
	}
	return int64(i) * int64(h.blen), n
}

// writeSums sends the sum head and the block sums of basis (n bytes).
func (e *encoder) writeSums(basis io.ReaderAt, n int64, seed int32) (sumHead, error) {
	h := headFor(n)
	if int64(h.count) > maxSumBlocks {
		return h, fmt.Errorf("basis of %d bytes has too many blocks", n)
	}
	e.int32(h.count)
	e.int32(h.blen)
	e.int32(h.s2len)
	e.int32(h.rem)
	w := newWindow(basis, n)
	md := md4.New()
	for i := range h.count {
		b, err := w.at(h.blockAt(i))
		if err != nil {
			return h, fmt.Errorf("reading the old copy: %w", err)
		}
		e.int32(int32(weakSum(b)))
		s := strongSumWith(md, b, seed)
		e.w.Write(s[:h.s2len])
	}
	return h, nil
}

// windowSize is how much of an old copy a window reads at once.
const windowSize = 256 << 10

// window serves reads of an old copy from one buffer refilled in large
// chunks: block sums and block references read it a block at a time,
// and a system call per block (700 bytes and up) costs more than hashing
// the block.
type window struct {
	r    io.ReaderAt
	size int64 // length of r
	buf  []byte
	off  int64 // r's offset of buf[0]
}

func newWindow(r io.ReaderAt, size int64) *window {
	return &window{r: r, size: size}
}

// at returns the l bytes of the old copy at off, valid until the next call.
func (w *window) at(off, l int64) ([]byte, error) {
	if off >= w.off && off+l <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off : off-w.off+l], nil
	}
	n := max(min(windowSize, w.size-off), l)
	if int64(cap(w.buf)) < n {
		w.buf = make([]byte, n)
	}
	w.buf = w.buf[:n]
	k, err := w.r.ReadAt(w.buf, off)
	if int64(k) < l {
		w.buf = w.buf[:0]
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	w.buf, w.off = w.buf[:k], off
	return w.buf[:l], nil
}

// blockTable is a receiver's block sums, for matching.
type blockTable struct {
	head   sumHead
	weak   map[uint32][]int32
	strong []byte // count × s2len
}

// readSums reads count block sums of head from d.
func readSums(d *decoder, h sumHead) (*blockTable, error) {
	// Sized as the sums arrive, not as the peer announces them.
	hint := min(h.count, 1<<16)
	t := &blockTable{head: h, weak: make(map[uint32][]int32, hint), strong: make([]byte, 0, int(hint)*int(h.s2len))}
	for i := range h.count {
		w, err := d.int32()
		if err != nil {
			return nil, err
		}
		s, err := d.bytes(int(h.s2len))
		if err != nil {
			return nil, err
		}
		t.weak[uint32(w)] = append(t.weak[uint32(w)], i)
		t.strong = append(t.strong, s...)
	}
	return t, nil
}

// find returns the block whose sums match p (weak sum w), preferring
// block want; -1 when none does.
func (t *blockTable) find(p []byte, w uint32, want int32, seed int32) int32 {
	cands := t.weak[w]
	if len(cands) == 0 {
		return -1
	}
	s := strongSum(p, seed)
	n := int(t.head.s2len)
	match := func(k int32) bool {
		_, l := t.head.blockAt(k)
		return int(l) == len(p) && string(t.strong[int(k)*n:int(k+1)*n]) == string(s[:n])
	}
	for _, k := range cands {
		if k == want && match(k) {
			return k
		}
	}
	for _, k := range cands {
		if k != want && match(k) {
			return k
		}
	}
	return -1
}

// matcher finds the receiver's blocks in data streamed through it and
// emits literal runs and block references, rsync's match_sums.
type matcher struct {
	t      *blockTable
	seed   int32
	buf    []byte // data not yet emitted: buf[:pos] is literal, buf[pos:] the window on
	pos    int
	s1, s2 uint32 // weak sum of buf[pos:pos+blen] when have
	have   bool
	next   int32 // the block after the last match
	emit   func(lit []byte, block int32) error
}

func sb(b byte) uint32 { return uint32(int32(int8(b))) }

// write feeds data.
func (m *matcher) write(p []byte) error {
	m.buf = append(m.buf, p...)
	blen := int(m.t.head.blen)
	for len(m.buf)-m.pos >= blen {
		if !m.have {
			m.s1, m.s2 = 0, 0
			for _, b := range m.buf[m.pos : m.pos+blen] {
				m.s1 += sb(b)
				m.s2 += m.s1
			}
			m.have = true
		}
		w := m.s1&0xffff | m.s2<<16
		if k := m.t.find(m.buf[m.pos:m.pos+blen], w, m.next, m.seed); k >= 0 {
			if err := m.emit(m.buf[:m.pos], k); err != nil {
				return err
			}
			m.buf = m.buf[:copy(m.buf, m.buf[m.pos+blen:])]
			m.pos, m.have, m.next = 0, false, k+1
			continue
		}
		if len(m.buf)-m.pos == blen {
			break // the next byte is not here yet
		}
		out, in := m.buf[m.pos], m.buf[m.pos+blen]
		m.s1 += sb(in) - sb(out)
		m.s2 += m.s1 - uint32(blen)*sb(out)
		m.pos++
		if m.pos >= maxSendToken {
			// Keep the literal run short: send what cannot match any more.
			if err := m.emit(m.buf[:m.pos], -1); err != nil {
				return err
			}
			m.buf = m.buf[:copy(m.buf, m.buf[m.pos:])]
			m.pos = 0
		}
	}
	return nil
}

// close emits what is left: the receiver's short last block when it
// matches the tail, literal data otherwise.
func (m *matcher) close() error {
	tail := m.buf[m.pos:]
	if h := m.t.head; h.rem != 0 && len(tail) == int(h.rem) {
		if k := m.t.find(tail, weakSum(tail), h.count-1, m.seed); k == h.count-1 {
			return m.emit(m.buf[:m.pos], k)
		}
	}
	return m.emit(m.buf, -1)
}
