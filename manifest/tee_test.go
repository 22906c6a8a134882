package manifest

import (
	"errors"
	"io"
	"strconv"
	"sync"
	"testing"
)

type countingIterator struct {
	n, max int
	err    error
}

func (c *countingIterator) Next() (*Entry, error) {
	if c.n == c.max {
		return nil, c.err
	}
	c.n++
	return &Entry{Path: strconv.Itoa(c.n)}, nil
}

// Both sides see every entry once, in order, sharing one Next of the
// source per entry, while they read concurrently at different paces.
func TestTeeBothSidesSeeEverything(t *testing.T) {
	src := &countingIterator{max: 5000, err: io.EOF}
	a, b := Tee(src)
	var wg sync.WaitGroup
	got := make([][]*Entry, 2)
	for i, side := range []*TeeSide{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				e, err := side.Next()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], e)
			}
		}()
	}
	wg.Wait()
	if src.n != 5000 {
		t.Fatalf("source read %d times, want 5000", src.n)
	}
	for i := range got {
		if len(got[i]) != 5000 {
			t.Fatalf("side %d: %d entries", i, len(got[i]))
		}
		for j, e := range got[i] {
			if e.Path != strconv.Itoa(j+1) || e != got[1-i][j] {
				t.Fatalf("side %d entry %d: %q (shared: %v)", i, j, e.Path, e == got[1-i][j])
			}
		}
	}
	if len(a.t.buf) != 0 {
		t.Errorf("%d entries kept after both sides finished", len(a.t.buf))
	}
}

// Entries are kept only for the side that lags, and only until it has
// read them.
func TestTeeKeepsOnlyTheGap(t *testing.T) {
	a, b := Tee(&countingIterator{max: 100, err: io.EOF})
	for range 30 {
		a.Next()
	}
	for range 10 {
		b.Next()
	}
	if n := len(a.t.buf); n != 20 {
		t.Fatalf("kept %d entries, want the gap of 20", n)
	}
	for range 20 {
		b.Next()
	}
	if n := len(a.t.buf); n != 0 {
		t.Fatalf("kept %d entries once the lagging side caught up", n)
	}
	for range 5 {
		b.Next()
	}
	if n := len(a.t.buf); n != 5 {
		t.Fatalf("kept %d entries for the side now lagging, want 5", n)
	}
}

// The source's error reaches both sides, after the entries before it.
func TestTeeError(t *testing.T) {
	boom := errors.New("boom")
	a, b := Tee(&countingIterator{max: 3, err: boom})
	for _, s := range []*TeeSide{a, b} {
		for i := range 3 {
			if _, err := s.Next(); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		if _, err := s.Next(); err != boom {
			t.Fatalf("err = %v, want boom", err)
		}
	}
}
