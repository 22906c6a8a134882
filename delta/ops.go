package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// OpKind is the kind of one delta operation.
type OpKind uint8

// Operation kinds; their values are part of the wire encoding.
const (
	OpCopy    OpKind = 1 // copy Length bytes from the basis at Offset
	OpLiteral OpKind = 2 // write Data
	OpEnd     OpKind = 3 // the target has Length bytes and xxhash64 Hash
)

// MaxLiteral bounds the data of one literal operation.
const MaxLiteral = 1 << 20

// Op is one delta operation.
type Op struct {
	Kind   OpKind
	Offset int64
	Length int64
	Data   []byte
	Hash   uint64
}

// OpWriter encodes operations to a stream.
type OpWriter struct {
	w   *bufio.Writer
	buf [2*binary.MaxVarintLen64 + 9]byte
}

// NewOpWriter returns an OpWriter on w; End flushes it.
func NewOpWriter(w io.Writer) *OpWriter { return &OpWriter{w: getWriter(w)} }

// Copy writes a copy operation.
func (o *OpWriter) Copy(off, n int64) error {
	b := append(o.buf[:0], byte(OpCopy))
	b = binary.AppendUvarint(b, uint64(off))
	b = binary.AppendUvarint(b, uint64(n))
	_, err := o.w.Write(b)
	return err
}

// Literal writes data as one or more literal operations.
func (o *OpWriter) Literal(data []byte) error {
	for len(data) > 0 {
		n := min(len(data), MaxLiteral)
		b := append(o.buf[:0], byte(OpLiteral))
		b = binary.AppendUvarint(b, uint64(n))
		if _, err := o.w.Write(b); err != nil {
			return err
		}
		if _, err := o.w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// End writes the end operation with the target's size and hash, then flushes.
func (o *OpWriter) End(size int64, hash uint64) error {
	b := append(o.buf[:0], byte(OpEnd))
	b = binary.AppendUvarint(b, uint64(size))
	b = binary.LittleEndian.AppendUint64(b, hash)
	if _, err := o.w.Write(b); err != nil {
		return err
	}
	if err := o.w.Flush(); err != nil {
		return err
	}
	putWriter(o.w)
	o.w = bufio.NewWriterSize(errWriter{}, 16) // no writes after End
	return nil
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("delta: write after End") }

// OpReader decodes an operation stream, checking copies against the basis
// size and literal lengths against MaxLiteral.
type OpReader struct {
	r         *bufio.Reader
	basisSize int64
	buf       []byte
	done      bool
}

// NewOpReader reads operations from r for a basis of basisSize bytes.
func NewOpReader(r io.Reader, basisSize int64) *OpReader {
	return &OpReader{r: getReader(r), basisSize: basisSize}
}

// Next returns the next operation. The Data of a literal is valid until the
// next call. After OpEnd it returns io.EOF.
func (o *OpReader) Next() (Op, error) {
	if o.done {
		return Op{}, io.EOF
	}
	k, err := o.r.ReadByte()
	if err != nil {
		return Op{}, o.short(err)
	}
	switch OpKind(k) {
	case OpCopy:
		off, err := binary.ReadUvarint(o.r)
		if err != nil {
			return Op{}, o.short(err)
		}
		n, err := binary.ReadUvarint(o.r)
		if err != nil {
			return Op{}, o.short(err)
		}
		if n == 0 || off > uint64(o.basisSize) || n > uint64(o.basisSize)-off {
			return Op{}, fmt.Errorf("%w: copy of %d bytes at %d outside a basis of %d bytes", ErrCorrupt, n, off, o.basisSize)
		}
		return Op{Kind: OpCopy, Offset: int64(off), Length: int64(n)}, nil
	case OpLiteral:
		n, err := binary.ReadUvarint(o.r)
		if err != nil {
			return Op{}, o.short(err)
		}
		if n == 0 || n > MaxLiteral {
			return Op{}, fmt.Errorf("%w: literal of %d bytes (max %d)", ErrCorrupt, n, MaxLiteral)
		}
		if cap(o.buf) < int(n) {
			if b, ok := literalBufs.Get().(*[]byte); ok && o.buf == nil {
				o.buf = *b
			}
			if cap(o.buf) < int(n) {
				o.buf = make([]byte, max(int(n), 64<<10))
			}
		}
		p := o.buf[:n]
		if _, err := io.ReadFull(o.r, p); err != nil {
			return Op{}, o.short(err)
		}
		return Op{Kind: OpLiteral, Length: int64(n), Data: p}, nil
	case OpEnd:
		n, err := binary.ReadUvarint(o.r)
		if err != nil {
			return Op{}, o.short(err)
		}
		var h [8]byte
		if _, err := io.ReadFull(o.r, h[:]); err != nil {
			return Op{}, o.short(err)
		}
		if n > 1<<62 {
			return Op{}, fmt.Errorf("%w: end size %d", ErrCorrupt, n)
		}
		o.done = true
		if o.buf != nil {
			b := o.buf[:0]
			literalBufs.Put(&b)
			o.buf = nil
		}
		putReader(o.r)
		o.r = nil
		return Op{Kind: OpEnd, Length: int64(n), Hash: binary.LittleEndian.Uint64(h[:])}, nil
	}
	return Op{}, fmt.Errorf("%w: unknown op %#x", ErrCorrupt, k)
}

func (o *OpReader) short(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: op stream ends before its end marker", ErrCorrupt)
	}
	return err
}
