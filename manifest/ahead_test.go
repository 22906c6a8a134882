package manifest

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

type failingIterator struct {
	n, failAt int
}

func (f *failingIterator) Next() (*Entry, error) {
	if f.n == f.failAt {
		return nil, errors.New("disk error")
	}
	f.n++
	return &Entry{Path: fmt.Sprintf("f%06d", f.n)}, nil
}

func TestReadAhead(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 257, 5000} {
		var es []*Entry
		for i := range n {
			es = append(es, &Entry{Path: fmt.Sprintf("f%06d", i)})
		}
		a := ReadAhead(&SliceIterator{Entries: es}, 1000)
		for i := range n {
			e, err := a.Next()
			if err != nil || e != es[i] {
				t.Fatalf("%d entries: entry %d is %v, %v", n, i, e, err)
			}
		}
		for range 2 {
			if e, err := a.Next(); e != nil || err != io.EOF {
				t.Fatalf("%d entries: after the end: %v, %v", n, e, err)
			}
		}
		a.Close()
	}
	// An error comes after the entries before it, and stays.
	a := ReadAhead(&failingIterator{failAt: 600}, 100)
	for i := range 600 {
		if _, err := a.Next(); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	for range 2 {
		if _, err := a.Next(); err == nil || err == io.EOF {
			t.Fatalf("the source's error was lost: %v", err)
		}
	}
	a.Close()
	// Closed early, with the goroutine blocked on a full buffer: Close
	// returns, and Next says the iterator is closed.
	a = ReadAhead(&failingIterator{failAt: -1}, 300)
	a.Next()
	a.Close()
	a.Close()
	if _, err := a.Next(); err == nil {
		t.Fatal("Next after Close returned an entry")
	}
}
