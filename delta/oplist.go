package delta

import (
	"fmt"
	"io"
)

// Ops is a source of operations, such as an OpReader or an OpList.
type Ops interface {
	// Next returns the next operation; the Data of a literal is valid
	// until the next call. After OpEnd it returns io.EOF.
	Next() (Op, error)
}

// OpList holds operations in memory, for a producer that must not wait
// for its consumer: literal data is kept in one buffer, adjacent literals
// and contiguous copies are merged, and Next hands the data out without
// copying it again. The zero value is an empty list.
type OpList struct {
	ops  []Op // literals have no Data: it is the next Length bytes of data
	data []byte
	next int // the operation Next returns
	off  int // where its data starts if it is a literal
}

// Copy adds a copy of n bytes of the basis at off.
func (l *OpList) Copy(off, n int64) {
	if k := len(l.ops) - 1; k >= 0 && l.ops[k].Kind == OpCopy && l.ops[k].Offset+l.ops[k].Length == off {
		l.ops[k].Length += n
		return
	}
	l.ops = append(l.ops, Op{Kind: OpCopy, Offset: off, Length: n})
}

// Literal adds a copy of data.
func (l *OpList) Literal(data []byte) {
	if len(data) == 0 {
		return
	}
	l.data = append(l.data, data...)
	if k := len(l.ops) - 1; k >= 0 && l.ops[k].Kind == OpLiteral {
		l.ops[k].Length += int64(len(data))
		return
	}
	l.ops = append(l.ops, Op{Kind: OpLiteral, Length: int64(len(data))})
}

// End adds the end operation: the target has size bytes and xxhash64 hash.
func (l *OpList) End(size int64, hash uint64) {
	l.ops = append(l.ops, Op{Kind: OpEnd, Length: size, Hash: hash})
}

// DataLen is the number of literal bytes held.
func (l *OpList) DataLen() int { return len(l.data) }

// Next returns the operations in the order they were added.
func (l *OpList) Next() (Op, error) {
	if l.next >= len(l.ops) {
		if l.next > 0 && l.ops[l.next-1].Kind == OpEnd {
			return Op{}, io.EOF
		}
		return Op{}, fmt.Errorf("%w: op list ends before its end marker", ErrCorrupt)
	}
	op := l.ops[l.next]
	l.next++
	if op.Kind == OpLiteral {
		op.Data = l.data[l.off : l.off+int(op.Length)]
		l.off += int(op.Length)
	}
	return op, nil
}

// WriteTo encodes the operations not yet returned by Next to w. Only an
// end operation flushes w.
func (l *OpList) WriteTo(w *OpWriter) error {
	for l.next < len(l.ops) {
		op, _ := l.Next()
		var err error
		switch op.Kind {
		case OpCopy:
			err = w.Copy(op.Offset, op.Length)
		case OpLiteral:
			err = w.Literal(op.Data)
		case OpEnd:
			err = w.End(op.Length, op.Hash)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Reset empties the list, keeping its memory for reuse.
func (l *OpList) Reset() {
	l.ops, l.data = l.ops[:0], l.data[:0]
	l.next, l.off = 0, 0
}
