package rsync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// closableBasis is a receiver's old copy that the worker closes once its
// request is answered; it records reads after that.
type closableBasis struct {
	mu        sync.Mutex
	closed    bool
	reads     int
	lateReads int
}

func (b *closableBasis) ReadAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads++
	if b.closed {
		b.lateReads++
	}
	clear(p)
	return len(p), nil
}

func (b *closableBasis) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

func (b *closableBasis) count() (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads, b.lateReads
}

// A reply failed by another goroutine (the connection broken, the pass's
// context ended) lets its worker go on: the worker closes its old copy
// (fetchCopy's deferred f.Close, an fsx.File whose descriptor number the
// process then reuses). The reader, still receiving that reply's data,
// must not read the old copy any more: with an fsx.File that is a pread on
// a closed (or reused) descriptor racing with Close.
func TestFailedReplyBasisNotReadAfterRelease(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	c := &Client{name: "test", dec: &decoder{r: bufio.NewReader(pr)}, phase: make(chan struct{}, 4),
		finished: make(chan struct{}), kick: make(chan struct{}, 1)}
	basis := &closableBasis{}
	const blen = 8
	size := int64(windowSize + blen)
	r := newReply(0, "f")
	r.head = sumHead{count: int32(size / blen), blen: blen, s2len: 16}
	r.basis, r.basisSize = basis, size
	c.queue = []*reply{r}
	go c.receive()

	put := func(v int32) {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(v))
		if _, err := pw.Write(b[:]); err != nil {
			t.Fatal(err)
		}
	}
	put(0) // the answer to index 0
	put(r.head.count)
	put(r.head.blen)
	put(r.head.s2len)
	put(r.head.rem)
	put(-1) // block 0: the first window of the old copy is read
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := basis.count(); n == 0; n, _ = basis.count() {
		if time.Now().After(deadline) {
			t.Fatal("the reader never read the old copy")
		}
		time.Sleep(time.Millisecond)
	}
	// Another goroutine fails the reply; its worker gets the result and
	// closes the old copy.
	r.fail(errors.New("connection broken"))
	r.Result()
	basis.close()
	// The sender's data for that reply goes on: a block beyond the first
	// window, then the end of the file.
	put(-(int32(windowSize/blen) + 1))
	put(0)
	pw.Write(make([]byte, 16))
	time.Sleep(100 * time.Millisecond)
	if _, late := basis.count(); late > 0 {
		t.Fatalf("the reader read the old copy %d time(s) after its reply was failed and its worker closed it", late)
	}
}
