package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// edit applies one random edit of the kinds a migration sees.
func edit(r *rand.Rand, b []byte) ([]byte, string) {
	pos := 0
	if len(b) > 0 {
		pos = r.IntN(len(b) + 1)
	}
	n := 1 + r.IntN(5000)
	switch r.IntN(5) {
	case 0:
		return append(b[:pos:pos], append(randBytes(r, n), b[pos:]...)...), "insert"
	case 1:
		end := min(len(b), pos+n)
		return append(b[:pos:pos], b[end:]...), "delete"
	case 2:
		out := bytes.Clone(b)
		copy(out[pos:], randBytes(r, n))
		return out, "overwrite"
	case 3:
		return append(bytes.Clone(b), randBytes(r, n)...), "append"
	default:
		return bytes.Clone(b[:pos]), "truncate"
	}
}

func roundTrip(t *testing.T, basis, target []byte, blockSize int) Stats {
	t.Helper()
	ctx := context.Background()
	sig, _, err := Sign(ctx, bytes.NewReader(basis), int64(len(basis)), blockSize)
	if err != nil {
		t.Fatal(err)
	}
	// The signature crosses the wire too.
	enc, _ := sig.MarshalBinary()
	var sig2 Signature
	if err := sig2.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	var ops bytes.Buffer
	st, err := Diff(ctx, &sig2, bytes.NewReader(target), NewOpWriter(&ops))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, _, err := Apply(ctx, bytes.NewReader(basis), NewOpReader(&ops, int64(len(basis))), &out)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(target)) || !bytes.Equal(out.Bytes(), target) {
		t.Fatalf("rebuilt %d bytes differ from target of %d", n, len(target))
	}
	if st.Literal+st.Matched != int64(len(target)) || st.Size != int64(len(target)) {
		t.Fatalf("stats %+v do not add up to %d", st, len(target))
	}
	return st
}

func TestRandomEditsReproduceTarget(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 1))
	for i := range 300 {
		size := []int{0, 1, 700, 4096, 65536, 300000}[i%6] + r.IntN(1000)
		basis := randBytes(r, size)
		target := basis
		var kinds []string
		for range 1 + r.IntN(6) {
			var k string
			target, k = edit(r, target)
			kinds = append(kinds, k)
		}
		bs := 0
		if i%3 == 0 {
			bs = MinBlockSize
		}
		t.Run(fmt.Sprint(kinds), func(t *testing.T) { roundTrip(t, basis, target, bs) })
	}
}

func TestDeltaSendsLittleForSmallEdits(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	basis := randBytes(r, 4<<20)
	target := bytes.Clone(basis)
	copy(target[1<<20:], "hello, changed world")
	target = append(target[:3<<20], append([]byte("inserted"), target[3<<20:]...)...)
	st := roundTrip(t, basis, target, 0)
	if st.Literal > 3*int64(BlockSize(4<<20)) {
		t.Errorf("sent %d literal bytes for two small edits (block %d)", st.Literal, BlockSize(4<<20))
	}
	// Unchanged file: everything matched.
	st = roundTrip(t, basis, basis, 0)
	if st.Literal != 0 {
		t.Errorf("unchanged file sent %d literal bytes", st.Literal)
	}
}

func TestAppendFastPath(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(9, 9))
	old := randBytes(r, 100000)
	_, oldHash, _ := Sign(ctx, bytes.NewReader(old), int64(len(old)), 0)
	grown := append(bytes.Clone(old), []byte("From someone\nSubject: new mail\n\nbody\n")...)
	var ops bytes.Buffer
	st, err := Append(ctx, int64(len(old)), oldHash, bytes.NewReader(grown), NewOpWriter(&ops))
	if err != nil {
		t.Fatal(err)
	}
	if st.Literal != int64(len(grown)-len(old)) || st.Matched != int64(len(old)) {
		t.Fatalf("append stats %+v", st)
	}
	var out bytes.Buffer
	if _, _, err := Apply(ctx, bytes.NewReader(old), NewOpReader(&ops, int64(len(old))), &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), grown) {
		t.Fatal("append rebuilt wrong content")
	}
	// A rewritten prefix (mailman's bin/arch) must be refused.
	rewritten := bytes.Clone(grown)
	rewritten[10] ^= 1
	ops.Reset()
	if _, err := Append(ctx, int64(len(old)), oldHash, bytes.NewReader(rewritten), NewOpWriter(&ops)); !errors.Is(err, ErrPrefixChanged) {
		t.Fatalf("changed prefix: err = %v", err)
	}
	if ops.Len() != 0 {
		t.Fatal("refused append wrote operations")
	}
}

func TestApplyDetectsWrongBasis(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 1))
	basis := randBytes(r, 50000)
	sig, _, _ := Sign(ctx, bytes.NewReader(basis), int64(len(basis)), 0)
	var ops bytes.Buffer
	if _, err := Diff(ctx, sig, bytes.NewReader(basis), NewOpWriter(&ops)); err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(basis)
	other[100] ^= 1 // the basis changed under the receiver
	_, _, err := Apply(ctx, bytes.NewReader(other), NewOpReader(&ops, int64(len(other))), io.Discard)
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("err = %v, want ErrVerify", err)
	}
}

func TestOpReaderBounds(t *testing.T) {
	for name, stream := range map[string][]byte{
		"copy past basis": {byte(OpCopy), 0x10, 0xff, 0x01},
		"huge literal":    {byte(OpLiteral), 0xff, 0xff, 0xff, 0x7f},
		"no end":          {byte(OpLiteral), 1, 'x'},
		"unknown op":      {9},
		"zero copy":       {byte(OpCopy), 0, 0},
	} {
		r := NewOpReader(bytes.NewReader(stream), 100)
		var err error
		for err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestBlockSize(t *testing.T) {
	for _, c := range []struct {
		size int64
		want int
	}{{0, MinBlockSize}, {1 << 20, 1024}, {100 << 20, 10240}, {1 << 40, 1 << 20}} {
		if got := BlockSize(c.size); got != c.want {
			t.Errorf("BlockSize(%d) = %d, want %d", c.size, got, c.want)
		}
		if n := numBlocks(c.size, BlockSize(c.size)); n > MaxBlocks {
			t.Errorf("size %d: %d blocks", c.size, n)
		}
	}
}

func TestRollingMatchesDirect(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	data := randBytes(r, 5000)
	const w = 700
	var roll Rolling
	roll.Reset(data[:w])
	for i := 0; i+w < len(data); i++ {
		if roll.Sum() != WeakSum(data[i:i+w]) {
			t.Fatalf("rolling sum differs at %d", i)
		}
		roll.Roll(data[i], data[i+w])
	}
}

func FuzzOpReader(f *testing.F) {
	var b bytes.Buffer
	w := NewOpWriter(&b)
	w.Copy(0, 10)
	w.Literal([]byte("abc"))
	w.End(13, 1)
	f.Add(b.Bytes(), int64(20))
	f.Fuzz(func(t *testing.T, data []byte, basis int64) {
		if basis < 0 || basis > 1<<20 {
			return
		}
		r := NewOpReader(bytes.NewReader(data), basis)
		for range 10000 {
			op, err := r.Next()
			if err != nil {
				return
			}
			if op.Kind == OpCopy && (op.Offset < 0 || op.Offset+op.Length > basis) {
				t.Fatalf("copy %d+%d outside basis %d", op.Offset, op.Length, basis)
			}
			if op.Kind == OpLiteral && len(op.Data) > MaxLiteral {
				t.Fatal("literal too long")
			}
		}
	})
}

func FuzzSignature(f *testing.F) {
	sig, _, _ := Sign(context.Background(), bytes.NewReader(make([]byte, 3000)), 3000, 0)
	enc, _ := sig.MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Signature
		if s.UnmarshalBinary(data) != nil {
			return
		}
		if s.Blocks() != numBlocks(s.FileSize, s.BlockSize) || s.Blocks() > MaxBlocks {
			t.Fatal("inconsistent signature accepted")
		}
	})
}

func BenchmarkRolling(b *testing.B) {
	data := randBytes(rand.New(rand.NewPCG(1, 2)), 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var r Rolling
		r.Reset(data[:1024])
		for i := 0; i+1024 < len(data); i++ {
			r.Roll(data[i], data[i+1024])
		}
		_ = r.Sum()
	}
}

func benchDiff(b *testing.B, basis, target []byte) {
	ctx := context.Background()
	sig, _, _ := Sign(ctx, bytes.NewReader(basis), int64(len(basis)), 0)
	b.SetBytes(int64(len(target)))
	for b.Loop() {
		if _, err := Diff(ctx, sig, bytes.NewReader(target), NewOpWriter(io.Discard)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiffUnchanged: every block matches; the matcher jumps block-wise.
func BenchmarkDiffUnchanged(b *testing.B) {
	data := randBytes(rand.New(rand.NewPCG(1, 2)), 16<<20)
	benchDiff(b, data, data)
}

// BenchmarkDiffNoMatch: nothing matches; the matcher rolls byte by byte.
func BenchmarkDiffNoMatch(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	benchDiff(b, randBytes(r, 16<<20), randBytes(r, 16<<20))
}

func BenchmarkSign(b *testing.B) {
	data := randBytes(rand.New(rand.NewPCG(1, 2)), 16<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := Sign(context.Background(), bytes.NewReader(data), int64(len(data)), 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	basis := randBytes(r, 16<<20)
	target := bytes.Clone(basis)
	copy(target[5<<20:], randBytes(r, 1<<20))
	sig, _, _ := Sign(ctx, bytes.NewReader(basis), int64(len(basis)), 0)
	var ops bytes.Buffer
	Diff(ctx, sig, bytes.NewReader(target), NewOpWriter(&ops))
	b.SetBytes(int64(len(target)))
	for b.Loop() {
		if _, _, err := Apply(ctx, bytes.NewReader(basis), NewOpReader(bytes.NewReader(ops.Bytes()), int64(len(basis))), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
