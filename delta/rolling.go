// Package delta implements rsync's delta-transfer algorithm with xxhash64
// strong sums: the receiver signs its old copy of a file (Sign), the sender
// matches the new content against that signature and emits copy and literal
// operations (Diff), and the receiver rebuilds the new file from its old copy
// and the literals (Apply), checking the whole-file hash at the end.
//
// Everything works on plain io.Reader, io.ReaderAt and io.Writer values; the
// operation and signature encodings bound every length before allocating.
package delta

// Rolling is rsync's weak rolling checksum over a window of bytes: a is the
// sum of the bytes, b the sum of the running sums, both mod 2^16.
type Rolling struct {
	a, b uint32
	n    uint32
}

// Reset computes the checksum of p.
func (r *Rolling) Reset(p []byte) {
	var a, b uint32
	n := uint32(len(p))
	for i, c := range p {
		a += uint32(c)
		b += (n - uint32(i)) * uint32(c)
	}
	r.a, r.b, r.n = a, b, n
}

// Roll slides the window one byte: out leaves at the front, in enters at the back.
func (r *Rolling) Roll(out, in byte) {
	r.a += uint32(in) - uint32(out)
	r.b += r.a - r.n*uint32(out)
}

// Sum returns the 32-bit checksum.
func (r *Rolling) Sum() uint32 { return r.a&0xffff | r.b<<16 }

// WeakSum returns the rolling checksum of p.
func WeakSum(p []byte) uint32 {
	var r Rolling
	r.Reset(p)
	return r.Sum()
}
