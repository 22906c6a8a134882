package delta

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/cespare/xxhash/v2"
)

const (
	// MinBlockSize and MaxBlockSize bound the block size of a signature.
	MinBlockSize = 512
	MaxBlockSize = 16 << 20
	// MaxBlocks bounds the number of blocks of one signature; large files
	// get larger blocks instead.
	MaxBlocks = 1 << 20
	// MaxFileSize is the largest basis a signature can describe.
	MaxFileSize = int64(MaxBlockSize) * MaxBlocks
)

// ErrCorrupt is wrapped by errors about malformed signatures or op streams.
var ErrCorrupt = errors.New("corrupt delta data")

// BlockSize picks the block size for a basis of size bytes: about the square
// root of the size (as rsync does), a multiple of 8, at least MinBlockSize,
// and large enough that the signature has at most MaxBlocks blocks.
func BlockSize(size int64) int {
	bs := int64(math.Sqrt(float64(size)))
	bs = (bs + 7) &^ 7
	if need := (size + MaxBlocks - 1) / MaxBlocks; bs < need {
		bs = (need + 7) &^ 7
	}
	return int(min(max(bs, MinBlockSize), MaxBlockSize))
}

// Signature holds the weak and strong sums of every block of a basis file.
type Signature struct {
	BlockSize int
	FileSize  int64
	Weak      []uint32
	Strong    []uint64
}

// Blocks returns the number of blocks.
func (s *Signature) Blocks() int { return len(s.Weak) }

// blockLen returns the length of block i (the last one may be short).
func (s *Signature) blockLen(i int) int {
	if i == len(s.Weak)-1 {
		if r := int(s.FileSize % int64(s.BlockSize)); r != 0 {
			return r
		}
	}
	return s.BlockSize
}

func numBlocks(size int64, bs int) int {
	return int((size + int64(bs) - 1) / int64(bs))
}

// Sign reads size bytes of basis and returns their signature. It also
// returns the xxhash64 of the whole basis.
func Sign(ctx context.Context, basis io.Reader, size int64, blockSize int) (*Signature, uint64, error) {
	if size < 0 || size > MaxFileSize {
		return nil, 0, fmt.Errorf("delta: basis of %d bytes is too large to sign", size)
	}
	if blockSize <= 0 {
		blockSize = BlockSize(size)
	}
	n := numBlocks(size, blockSize)
	if n > MaxBlocks {
		return nil, 0, fmt.Errorf("delta: %d blocks of %d bytes exceed %d", n, blockSize, MaxBlocks)
	}
	s := &Signature{BlockSize: blockSize, FileSize: size, Weak: make([]uint32, n), Strong: make([]uint64, n)}
	buf := make([]byte, blockSize)
	whole := xxhash.New()
	for i := range n {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
		}
		p := buf[:s.blockLen(i)]
		if _, err := io.ReadFull(basis, p); err != nil {
			return nil, 0, fmt.Errorf("delta: read basis block %d: %w", i, err)
		}
		s.Weak[i] = WeakSum(p)
		s.Strong[i] = xxhash.Sum64(p)
		whole.Write(p)
	}
	return s, whole.Sum64(), nil
}

// MarshalBinary encodes the signature: block size, file size, block count,
// then per block a 4-byte weak and an 8-byte strong sum.
func (s *Signature) MarshalBinary() ([]byte, error) {
	b := binary.AppendUvarint(nil, uint64(s.BlockSize))
	b = binary.AppendUvarint(b, uint64(s.FileSize))
	b = binary.AppendUvarint(b, uint64(len(s.Weak)))
	for i := range s.Weak {
		b = binary.LittleEndian.AppendUint32(b, s.Weak[i])
		b = binary.LittleEndian.AppendUint64(b, s.Strong[i])
	}
	return b, nil
}

// UnmarshalBinary decodes a signature, checking every bound.
func (s *Signature) UnmarshalBinary(b []byte) error {
	bs, n := binary.Uvarint(b)
	if n <= 0 || bs < MinBlockSize || bs > MaxBlockSize {
		return fmt.Errorf("%w: signature block size", ErrCorrupt)
	}
	b = b[n:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size > uint64(MaxFileSize) {
		return fmt.Errorf("%w: signature file size", ErrCorrupt)
	}
	b = b[n:]
	cnt, n := binary.Uvarint(b)
	if n <= 0 || cnt > MaxBlocks || int(cnt) != numBlocks(int64(size), int(bs)) {
		return fmt.Errorf("%w: signature block count", ErrCorrupt)
	}
	b = b[n:]
	if uint64(len(b)) != cnt*12 {
		return fmt.Errorf("%w: signature has %d bytes of sums for %d blocks", ErrCorrupt, len(b), cnt)
	}
	s.BlockSize, s.FileSize = int(bs), int64(size)
	s.Weak, s.Strong = make([]uint32, cnt), make([]uint64, cnt)
	for i := range s.Weak {
		s.Weak[i] = binary.LittleEndian.Uint32(b)
		s.Strong[i] = binary.LittleEndian.Uint64(b[4:])
		b = b[12:]
	}
	return nil
}
