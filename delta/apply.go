package delta

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
)

// ErrVerify reports that a rebuilt file does not have the size or hash the
// sender announced; the caller should fall back to a full copy.
var ErrVerify = errors.New("delta: rebuilt file does not match the sender's hash")

// Apply rebuilds a target from basis (basisSize bytes) and the operations of
// ops, writing it to out. It returns the number of bytes written and the
// target's hash once it has been checked against the end operation.
func Apply(ctx context.Context, basis io.ReaderAt, ops Ops, out io.Writer) (int64, uint64, error) {
	h := xxhash.New()
	w := io.MultiWriter(out, h)
	var written int64
	var buf []byte
	defer func() {
		if buf != nil {
			putBuf(&buf)
		}
	}()
	for i := 0; ; i++ {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return written, 0, err
			}
		}
		op, err := ops.Next()
		if err != nil {
			return written, 0, err
		}
		switch op.Kind {
		case OpCopy:
			if buf == nil {
				buf = *getBuf()
			}
			n, err := io.CopyBuffer(w, io.NewSectionReader(basis, op.Offset, op.Length), buf)
			written += n
			if err != nil {
				return written, 0, fmt.Errorf("delta: copy from basis: %w", err)
			}
			if n != op.Length {
				return written, 0, fmt.Errorf("delta: basis shorter than %d bytes: %w", op.Offset+op.Length, ErrVerify)
			}
		case OpLiteral:
			if _, err := w.Write(op.Data); err != nil {
				return written, 0, err
			}
			written += op.Length
		case OpEnd:
			if written != op.Length || h.Sum64() != op.Hash {
				return written, 0, fmt.Errorf("%w (%d bytes written, %d announced)", ErrVerify, written, op.Length)
			}
			return written, op.Hash, nil
		}
	}
}
