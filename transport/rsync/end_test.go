package rsync

import (
	"bufio"
	"io"
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
