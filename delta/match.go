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
	if sig == nil || len(sig.Weak) == 0 {
		return literalOnly(ctx, target, sink, xxhash.New())
	}
	d := &differ{
		ix: newIndex(sig), bs: sig.BlockSize, last: len(sig.Weak) - 1, lastLen: sig.blockLen(len(sig.Weak) - 1),
		target: target, sink: sink, whole: xxhash.New(),
		buf: make([]byte, max(4*sig.BlockSize, 1<<20)), want: -1,
	}
	err := d.run(ctx)
	return d.st, err
}

// differ is the state of one Diff: a window of bs bytes slides over the
// target through buf; the bytes it slid past (from lit to start) are the
// pending literal, and matched blocks coalesce into one pending copy.
type differ struct {
	ix      *index
	bs      int // block size
	last    int // the last block, the only one that may be short
	lastLen int // its length
	target  io.Reader
	sink    Sink
	whole   *xxhash.Digest // of the target as read
	st      Stats

	buf              []byte
	start, end, lit  int  // window start, valid data end, pending literal start
	eof              bool // target fully read
	roll             Rolling
	rolling          bool  // roll holds the sum of buf[start:start+bs]
	pendOff, pendLen int64 // coalesced copy not yet sent
	want             int   // the block expected next (the one after the last match)
}

// run slides the window to the end of the target, sending literals and
// copies as it goes, then the end of the stream.
func (d *differ) run(ctx context.Context) error {
	for {
		if d.end-d.start < d.bs {
			if d.eof {
				return d.finish()
			}
			if err := d.refill(); err != nil {
				return err
			}
			continue
		}
		if d.lit < d.start && d.start-d.lit >= MaxLiteral {
			if err := d.flushLit(d.start); err != nil {
				return err
			}
		}
		if !d.rolling {
			d.roll.Reset(d.buf[d.start : d.start+d.bs])
			d.rolling = true
		}
		if b := d.slide(); b >= 0 {
			if err := d.matched(b, d.bs); err != nil {
				return err
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// slide is the hot loop: it rolls the window one byte at a time until a
// block matches (it returns the block), the window reaches the end of the
// buffered data, the pending literal reaches MaxLiteral or 64 Ki positions
// were tried (it returns -1). It works on locals and stores them back.
func (d *differ) slide() int {
	bs, buf, ix, want := d.bs, d.buf, d.ix, d.want
	start, end, roll := d.start, d.end, d.roll
	stop := min(d.lit+MaxLiteral, start+1<<16)
	for {
		// Most positions have no block with their weak sum: an empty home
		// slot settles that without a call.
		if sum := roll.Sum(); ix.slots[mix(sum)&ix.mask] != 0 {
			if b := ix.find(sum, buf[start:start+bs], want); b >= 0 {
				d.start, d.roll = start, roll
				return b
			}
		}
		// Slide one byte; at the end of the buffered data the next window's
		// sum is computed afresh after a refill (or the tail is handled).
		if start+bs >= end {
			d.start, d.rolling = start+1, false
			return -1
		}
		roll.Roll(buf[start], buf[start+bs])
		start++
		if start >= stop {
			d.start, d.roll = start, roll
			return -1
		}
	}
}

// matched sends the pending literal before the window, which matched block
// b over n bytes, adds the block to the pending copy and moves past it.
func (d *differ) matched(b, n int) error {
	if err := d.flushLit(d.start); err != nil {
		return err
	}
	if err := addCopy(&d.pendOff, &d.pendLen, int64(b)*int64(d.bs), int64(n), d.sink, &d.st); err != nil {
		return err
	}
	d.start += n
	d.lit = d.start
	d.want = b + 1
	d.rolling = false
	return nil
}

// finish handles the tail shorter than a block, which can only match the
// last block, then sends what is pending and the end of the stream.
func (d *differ) finish() error {
	if rem := d.end - d.start; rem > 0 && rem == d.lastLen {
		w := d.buf[d.start:d.end]
		if b := d.ix.find(WeakSum(w), w, d.last); b >= 0 {
			if err := d.matched(b, rem); err != nil {
				return err
			}
		}
	}
	if err := d.flushLit(d.end); err != nil {
		return err
	}
	if err := d.flushCopy(); err != nil {
		return err
	}
	d.st.Hash = d.whole.Sum64()
	return d.sink.End(d.st.Size, d.st.Hash)
}

// refill reads more of the target behind the window, first sending the
// pending literal when keeping it would leave no room for a block.
func (d *differ) refill() error {
	if d.lit < d.start && len(d.buf)-d.end < d.bs {
		if err := d.flushLit(d.start); err != nil {
			return err
		}
	}
	// Keep the pending literal and the window; move them to the front.
	if keep := min(d.lit, d.start); keep > 0 {
		copy(d.buf, d.buf[keep:d.end])
		d.start -= keep
		d.lit -= keep
		d.end -= keep
	}
	for d.end < len(d.buf) && !d.eof {
		n, err := d.target.Read(d.buf[d.end:])
		d.whole.Write(d.buf[d.end : d.end+n])
		d.end += n
		d.st.Size += int64(n)
		if err == io.EOF {
			d.eof = true
		} else if err != nil {
			return fmt.Errorf("delta: read target: %w", err)
		}
	}
	return nil
}

func (d *differ) flushCopy() error {
	if d.pendLen > 0 {
		err := d.sink.Copy(d.pendOff, d.pendLen)
		d.st.Matched += d.pendLen
		d.pendLen = 0
		return err
	}
	return nil
}

// flushLit sends buf[lit:to] as a literal (after the pending copy).
func (d *differ) flushLit(to int) error {
	if to > d.lit {
		if err := d.flushCopy(); err != nil {
			return err
		}
		if err := d.sink.Literal(d.buf[d.lit:to]); err != nil {
			return err
		}
		d.st.Literal += int64(to - d.lit)
		d.lit = to
	}
	return nil
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
