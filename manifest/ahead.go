package manifest

import (
	"io"
	"sync"
)

// aheadBatch is how many entries cross from the decoding goroutine at once.
const aheadBatch = 256

// Ahead is an Iterator decoded in its own goroutine, ahead of Next.
type Ahead struct {
	ch    chan batch
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	cur   []*Entry
	err   error
	ended bool
}

type batch struct {
	es  []*Entry
	err error
}

// ReadAhead decodes it in a goroutine, up to about n entries ahead of
// Next, so that a consumer that first waits for something else (a remote
// file list) finds them ready, and decoding runs beside the consumer. Close
// stops the goroutine; call it before closing what it reads.
func ReadAhead(it Iterator, n int) *Ahead {
	a := &Ahead{ch: make(chan batch, max(1, n/aheadBatch)), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		es := make([]*Entry, 0, aheadBatch)
		for {
			e, err := it.Next()
			if err == nil {
				es = append(es, e)
			}
			if err != nil || len(es) == aheadBatch {
				select {
				case a.ch <- batch{es, err}:
				case <-a.stop:
					return
				}
				if err != nil {
					return
				}
				es = make([]*Entry, 0, aheadBatch)
			}
		}
	}()
	return a
}

// Next implements Iterator.
func (a *Ahead) Next() (*Entry, error) {
	for len(a.cur) == 0 {
		if a.ended {
			return nil, a.err
		}
		b := <-a.ch
		a.cur, a.err = b.es, b.err
		a.ended = b.err != nil
	}
	e := a.cur[0]
	a.cur[0] = nil
	a.cur = a.cur[1:]
	return e, nil
}

// Close stops the decoding goroutine and waits for it.
func (a *Ahead) Close() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
	if !a.ended {
		a.ended, a.err, a.cur = true, io.ErrClosedPipe, nil
	}
}
