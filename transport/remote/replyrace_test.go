package remote

import (
	"context"
	"fmt"
	"testing"

	"github.com/msync/msync/transport/wire"
)

type nopRWC struct{}

func (nopRWC) Read([]byte) (int, error)    { return 0, ErrClosed }
func (nopRWC) Write(p []byte) (int, error) { return len(p), nil }
func (nopRWC) Close() error                { return nil }

// A connection failed from another goroutine (the write loop's EPIPE, the
// pass's Close, the timeout) while the read loop has already looked up a
// fetch and still hands it the data of a frame it read: the failure closes
// the reply's channel, and the read loop's send on it must not panic. The
// read loop runs outside the handler's recover, so a panic there takes the
// whole daemon down.
func TestFetchDataAfterConnFailsDoesNotPanic(t *testing.T) {
	for i := 0; i < 64; i++ {
		c := &Conn{rw: nopRWC{}, done: make(chan struct{}), readerr: make(chan struct{}),
			scans: map[uint32]*scanStream{}, fetches: map[uint32]*fetchReply{}}
		r := newFetchReply(context.Background(), c, "f")
		c.fetches[1] = r
		// The read loop has taken r out of c.fetches (conn.go dispatch)...
		c.mu.Lock()
		got := c.fetches[1]
		c.mu.Unlock()
		// ...when another goroutine fails the connection.
		c.fail(ErrClosed)
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			return got.dispatch(c, wire.Frame{Type: wire.TData, Stream: 1, Payload: []byte("data")})
		}()
		if err != nil {
			t.Fatalf("iteration %d: data for a reply of a failed connection: %v", i, err)
		}
	}
}

// The end of a reply arriving as the connection fails: Result, woken by the
// failure, reads r.end while the read loop writes it (go test -race).
func TestFetchEndAfterConnFailsNoRace(t *testing.T) {
	c := &Conn{rw: nopRWC{}, done: make(chan struct{}), readerr: make(chan struct{}),
		scans: map[uint32]*scanStream{}, fetches: map[uint32]*fetchReply{}}
	r := newFetchReply(context.Background(), c, "f")
	c.fetches[1] = r
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.dispatch(c, wire.Frame{Type: wire.TEnd, Stream: 1, Payload: []byte{0}})
	}()
	c.fail(ErrClosed)
	r.Result()
	<-done
}
