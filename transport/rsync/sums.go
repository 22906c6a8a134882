package rsync

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"golang.org/x/crypto/md4"
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
	h := md4.New()
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
	buf := make([]byte, h.blen)
	for i := range h.count {
		off, l := h.blockAt(i)
		b := buf[:l]
		if _, err := basis.ReadAt(b, off); err != nil {
			return h, fmt.Errorf("reading the old copy: %w", err)
		}
		e.int32(int32(weakSum(b)))
		s := strongSum(b, seed)
		e.w.Write(s[:h.s2len])
	}
	return h, nil
}
