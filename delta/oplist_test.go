package delta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestOpList builds random targets from pieces of a basis and literals,
// and checks that the list applies, re-encodes and merges as it says.
func TestOpList(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 8))
	basis := randBytes(r, 50000)
	var l OpList
	for round := range 50 {
		l.Reset()
		var target []byte
		var ops int
		lastKind, lastEnd := OpKind(0), int64(-1)
		for range r.IntN(40) {
			if r.IntN(2) == 0 {
				off := r.Int64N(int64(len(basis)))
				if r.IntN(3) == 0 && lastKind == OpCopy && lastEnd < int64(len(basis)) {
					off = lastEnd // contiguous: must merge
				}
				n := 1 + r.Int64N(int64(len(basis))-off)
				if !(lastKind == OpCopy && lastEnd == off) {
					ops++
				}
				l.Copy(off, n)
				target = append(target, basis[off:off+n]...)
				lastKind, lastEnd = OpCopy, off+n
			} else {
				b := randBytes(r, r.IntN(3000))
				if len(b) > 0 && lastKind != OpLiteral {
					ops++
					lastKind = OpLiteral
				}
				l.Literal(b)
				target = append(target, b...)
			}
		}
		l.End(int64(len(target)), xxhash.Sum64(target))
		if got := len(l.ops); got != ops+1 {
			t.Fatalf("round %d: %d operations held, want %d after merging", round, got, ops+1)
		}
		if l.DataLen() > len(target) {
			t.Fatalf("round %d: %d literal bytes held for a target of %d", round, l.DataLen(), len(target))
		}
		// Encoded and decoded, the same operations rebuild the same target.
		var enc bytes.Buffer
		saved := l
		if err := saved.WriteTo(NewOpWriter(&enc)); err != nil {
			t.Fatal(err)
		}
		var out, out2 bytes.Buffer
		if _, _, err := Apply(ctx, bytes.NewReader(basis), &l, &out); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, err := l.Next(); err != io.EOF {
			t.Fatalf("round %d: after the end: %v, want EOF", round, err)
		}
		if _, _, err := Apply(ctx, bytes.NewReader(basis), NewOpReader(&enc, int64(len(basis))), &out2); err != nil {
			t.Fatalf("round %d: re-encoded: %v", round, err)
		}
		if !bytes.Equal(out.Bytes(), target) || !bytes.Equal(out2.Bytes(), target) {
			t.Fatalf("round %d: rebuilt %d/%d bytes, want %d", round, out.Len(), out2.Len(), len(target))
		}
	}
}

func TestOpListWithoutEnd(t *testing.T) {
	var l OpList
	l.Literal([]byte("abc"))
	if _, _, err := Apply(context.Background(), bytes.NewReader(nil), &l, io.Discard); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a list without its end applied: %v", err)
	}
	l.Reset()
	l.Literal([]byte("abc"))
	l.End(3, 1) // wrong hash
	if _, _, err := Apply(context.Background(), bytes.NewReader(nil), &l, io.Discard); !errors.Is(err, ErrVerify) {
		t.Fatalf("a list with a wrong hash applied: %v", err)
	}
}
