package manifest

import "sync"

// Tee lets two consumers, on any goroutines, read one Iterator at their own
// pace: each entry is taken from it once and kept until both have passed
// it. The consumers share the entries, so neither may modify them. Memory
// is the gap between the two: entries one side has read stay until the
// other reads them or the Tee is dropped.
func Tee(it Iterator) (*TeeSide, *TeeSide) {
	t := &tee{it: it}
	a, b := &TeeSide{t: t}, &TeeSide{t: t}
	t.sides = [2]*TeeSide{a, b}
	return a, b
}

type tee struct {
	mu    sync.Mutex
	it    Iterator
	buf   []*Entry // entries base, base+1, ...
	base  int
	err   error // the iterator's final error (io.EOF at the end)
	sides [2]*TeeSide
}

// TeeSide is one consumer's view of a Tee.
type TeeSide struct {
	t   *tee
	pos int // index of the next entry for this side
}

// Next implements Iterator.
func (s *TeeSide) Next() (*Entry, error) {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.pos == t.base+len(t.buf) {
		if t.err != nil {
			return nil, t.err
		}
		e, err := t.it.Next()
		if err != nil {
			t.err = err
			return nil, err
		}
		t.buf = append(t.buf, e)
	}
	e := t.buf[s.pos-t.base]
	s.pos++
	t.trim()
	return e, nil
}

// trim drops the entries both sides have passed; called with mu held.
func (t *tee) trim() {
	n := min(t.sides[0].pos, t.sides[1].pos) - t.base
	if n <= 0 {
		return
	}
	clear(t.buf[:n])
	t.buf = t.buf[n:]
	t.base += n
	if len(t.buf) == 0 {
		t.buf = t.buf[:0:0] // let the old array go once drained
	}
}
