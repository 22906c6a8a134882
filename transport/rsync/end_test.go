package rsync

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// TestGoodbyeBeforeTotals plays a sender that sends its totals only once
// the goodbye has come, as a daemon whose totals wait behind an
// unacknowledged packet effectively does: the end of a pull must not wait
// for the totals before saying goodbye.
func TestGoodbyeBeforeTotals(t *testing.T) {
	cr, sw := io.Pipe() // sender -> client
	sr, cw := io.Pipe() // client -> sender
	c := &Client{name: "test", log: io.Discard, phase: make(chan struct{}, 4), finished: make(chan struct{}),
		kick: make(chan struct{}, 1), fields: allFields, scanned: true, list: &fileList{index: map[string]int32{}}}
	c.dec = &decoder{r: bufio.NewReader(cr)}
	c.enc = &encoder{w: bufio.NewWriter(cw)}
	c.closer = func() error { cr.Close(); cw.Close(); return nil }
	go c.readLoop()

	sent := make(chan error, 1)
	go func() {
		d, e := &decoder{r: bufio.NewReader(sr)}, &encoder{w: bufio.NewWriter(sw)}
		// Two phase markers, each answered; then the goodbye.
		for i := range 3 {
			v, err := d.int32()
			if err != nil || v != -1 {
				sent <- err
				return
			}
			if i < 2 {
				e.int32(-1)
				e.w.Flush()
			}
		}
		e.longint(10)
		e.longint(20)
		e.longint(30)
		sent <- e.w.Flush()
	}()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatalf("the sender did not get two markers and a goodbye: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client waits for the totals before its goodbye")
	}
	<-closed
	if c.stats != (Stats{Written: 10, Read: 20, Size: 30}) {
		t.Fatalf("totals %+v, want written 10, read 20, size 30 (rsync's order)", c.stats)
	}
}

type countingReaderAt struct {
	r     *bytes.Reader
	calls int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.calls++
	return c.r.ReadAt(p, off)
}

// TestWindow reads an old copy block by block, in order and out of it,
// and checks the bytes and that reads come in large pieces.
func TestWindow(t *testing.T) {
	data := make([]byte, 1<<20+123)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	c := &countingReaderAt{r: bytes.NewReader(data)}
	w := newWindow(c, int64(len(data)))
	h := headFor(int64(len(data)))
	for i := range h.count {
		off, l := h.blockAt(i)
		b, err := w.at(off, l)
		if err != nil || !bytes.Equal(b, data[off:off+l]) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	if want := len(data)/windowSize + 1; c.calls > want {
		t.Errorf("%d reads for %d blocks in order, want at most %d", c.calls, h.count, want)
	}
	for range 200 {
		off := r.Int64N(int64(len(data)))
		l := min(r.Int64N(5000)+1, int64(len(data))-off)
		b, err := w.at(off, l)
		if err != nil || !bytes.Equal(b, data[off:off+l]) {
			t.Fatalf("%d bytes at %d: %v", l, off, err)
		}
	}
	// An old copy that shrank under the window is an error, not zeros.
	short := newWindow(bytes.NewReader(data[:1000]), int64(len(data)))
	if _, err := short.at(900, 700); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading past the end: %v", err)
	}
}
