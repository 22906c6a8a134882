package delta

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
)

// Sink receives the operations Diff produces; *OpWriter is one.
type Sink interface {
	Copy(off, n int64) error
	Literal(data []byte) error
	End(size int64, hash uint64) error
}

// Stats counts what a Diff sent.
type Stats struct {
	Size    int64  // bytes of the target
	Literal int64  // bytes sent as literals
	Matched int64  // bytes copied from the basis
	Hash    uint64 // xxhash64 of the target
}

// index is an open-addressing table from weak sum to block numbers.
type index struct {
	mask  uint32
	slots []int32 // block+1, 0 = empty
	sig   *Signature
}

func newIndex(sig *Signature) *index {
	// At most a quarter full: most rolling positions match nothing, and an
	// empty home slot (checked inline by Diff) settles them at once.
	size := uint32(1)
	for size < uint32(4*len(sig.Weak)+1) {
		size <<= 1
	}
	ix := &index{mask: size - 1, slots: make([]int32, size), sig: sig}
	// Insert in reverse so that lookups find the lowest block first among
	// equal weak sums when probing from the home slot.
	for i := range sig.Weak {
		h := mix(sig.Weak[i]) & ix.mask
		for ix.slots[h] != 0 {
			h = (h + 1) & ix.mask
		}
		ix.slots[h] = int32(i + 1)
	}
	return ix
}

func mix(w uint32) uint32 {
	w ^= w >> 16
	w *= 0x45d9f3b
	w ^= w >> 16
	return w
}

// find returns a block whose weak and strong sums match window, preferring
// want (the block after the previous match), or -1.
func (ix *index) find(weak uint32, window []byte, want int) int {
	h := mix(weak) & ix.mask
	var strong uint64
	haveStrong := false
	found := -1
	for {
		s := ix.slots[h]
		if s == 0 {
			return found
		}
		b := int(s - 1)
		if ix.sig.Weak[b] == weak && ix.sig.blockLen(b) == len(window) {
			if !haveStrong {
				strong = xxhash.Sum64(window)
				haveStrong = true
			}
			if ix.sig.Strong[b] == strong {
				if b == want {
					return b
				}
				if found < 0 {
					found = b
				}
			}
		}
		h = (h + 1) & ix.mask
	}
}

// Diff reads target and writes to sink the operations that rebuild it from
// the basis described by sig.
func Diff(ctx context.Context, sig *Signature, target io.Reader, sink Sink) (Stats, error) {
	var st Stats
	whole := xxhash.New()
	if sig == nil || len(sig.Weak) == 0 {
		return literalOnly(ctx, target, sink, whole)
	}
	ix := newIndex(sig)
	bs := sig.BlockSize
	lastLen := sig.blockLen(len(sig.Weak) - 1)

	buf := make([]byte, max(4*bs, 1<<20))
	var (
		start, end, lit int  // window start, valid data end, pending literal start
		eof             bool // target fully read
		roll            Rolling
		rolling         bool // roll holds the sum of buf[start:start+bs]
		pendOff         int64
		pendLen         int64 // coalesced copy not yet sent
		want            = -1
		checked         int64
	)
	flushCopy := func() error {
		if pendLen > 0 {
			err := sink.Copy(pendOff, pendLen)
			st.Matched += pendLen
			pendLen = 0
			return err
		}
		return nil
	}
	flushLit := func(to int) error {
		if to > lit {
			if err := flushCopy(); err != nil {
				return err
			}
			if err := sink.Literal(buf[lit:to]); err != nil {
				return err
			}
			st.Literal += int64(to - lit)
			lit = to
		}
		return nil
	}
	fill := func() error {
		// Keep the pending literal and the window; move them to the front.
		keep := min(lit, start)
		if keep > 0 {
			copy(buf, buf[keep:end])
			start -= keep
			lit -= keep
			end -= keep
		}
		for end < len(buf) && !eof {
			n, err := target.Read(buf[end:])
			whole.Write(buf[end : end+n])
			end += n
			st.Size += int64(n)
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return fmt.Errorf("delta: read target: %w", err)
			}
		}
		return nil
	}
	for {
		if end-start < bs && !eof {
			if lit < start && len(buf)-end < bs {
				// The literal would block the refill: send it now.
				if err := flushLit(start); err != nil {
					return st, err
				}
			}
			if err := fill(); err != nil {
				return st, err
			}
			continue
		}
		if end-start < bs {
			// Tail shorter than a block: it can only match the last block.
			rem := end - start
			if rem > 0 && rem == lastLen {
				w := buf[start:end]
				if b := ix.find(WeakSum(w), w, len(sig.Weak)-1); b >= 0 {
					if err := flushLit(start); err != nil {
						return st, err
					}
					addCopy(&pendOff, &pendLen, int64(b)*int64(bs), int64(rem), sink, &st)
					start, lit = end, end
				}
			}
			if err := flushLit(end); err != nil {
				return st, err
			}
			if err := flushCopy(); err != nil {
				return st, err
			}
			st.Hash = whole.Sum64()
			return st, sink.End(st.Size, st.Hash)
		}
		if lit < start && start-lit >= MaxLiteral {
			if err := flushLit(start); err != nil {
				return st, err
			}
		}
		if !rolling {
			roll.Reset(buf[start : start+bs])
			rolling = true
		}
		checked++
		if checked&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		// Most positions have no block with their weak sum: an empty home
		// slot settles that without a call.
		if sum := roll.Sum(); ix.slots[mix(sum)&ix.mask] != 0 {
			if b := ix.find(sum, buf[start:start+bs], want); b >= 0 {
				if err := flushLit(start); err != nil {
					return st, err
				}
				if err := addCopy(&pendOff, &pendLen, int64(b)*int64(bs), int64(bs), sink, &st); err != nil {
					return st, err
				}
				start += bs
				lit = start
				want = b + 1
				rolling = false
				continue
			}
		}
		// Slide one byte; at the end of the buffered data the next window's
		// sum is computed afresh after a refill (or the tail is handled).
		if start+bs < end {
			roll.Roll(buf[start], buf[start+bs])
		} else {
			rolling = false
		}
		start++
	}
}

func addCopy(off, n *int64, o, l int64, sink Sink, st *Stats) error {
	if *n > 0 && *off+*n == o {
		*n += l
		return nil
	}
	if *n > 0 {
		if err := sink.Copy(*off, *n); err != nil {
			return err
		}
		st.Matched += *n
	}
	*off, *n = o, l
	return nil
}

func literalOnly(ctx context.Context, target io.Reader, sink Sink, whole *xxhash.Digest) (Stats, error) {
	var st Stats
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n, err := io.ReadFull(target, buf)
		if n > 0 {
			whole.Write(buf[:n])
			if werr := sink.Literal(buf[:n]); werr != nil {
				return st, werr
			}
			st.Size += int64(n)
			st.Literal += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("delta: read target: %w", err)
		}
	}
	st.Hash = whole.Sum64()
	return st, sink.End(st.Size, st.Hash)
}

// ErrPrefixChanged reports that the old prefix of an append candidate differs.
var ErrPrefixChanged = errors.New("prefix changed")

// Append implements the append fast path: when the first prefixLen bytes of
// target hash to prefixHash (the receiver's whole old file), it sends one
// copy of the prefix and the rest as literals. Otherwise it returns
// ErrPrefixChanged having sent nothing; target has then been read past the
// prefix and must be reopened for a normal Diff.
func Append(ctx context.Context, prefixLen int64, prefixHash uint64, target io.Reader, sink Sink) (Stats, error) {
	var st Stats
	whole := xxhash.New()
	bp := getBuf()
	n, err := io.CopyBuffer(whole, io.LimitReader(target, prefixLen), *bp)
	putBuf(bp)
	if err != nil {
		return st, fmt.Errorf("delta: read target prefix: %w", err)
	}
	if n != prefixLen || whole.Sum64() != prefixHash {
		return st, ErrPrefixChanged
	}
	if prefixLen > 0 {
		if err := sink.Copy(0, prefixLen); err != nil {
			return st, err
		}
	}
	rest, err := literalOnly(ctx, target, &noEnd{sink}, whole)
	if err != nil {
		return st, err
	}
	st = Stats{Size: prefixLen + rest.Size, Literal: rest.Literal, Matched: prefixLen, Hash: whole.Sum64()}
	return st, sink.End(st.Size, st.Hash)
}

type noEnd struct{ Sink }

func (noEnd) End(int64, uint64) error { return nil }
