package delta

import (
	"bufio"
	"io"
	"sync"
)

// Buffers are pooled: a pass moves many small files, and a fresh 256 KiB
// buffer per file would cost more in zeroing than the file's own I/O.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// literalBufs recycles the literal buffers of finished OpReaders: a fresh
// one per file costs page faults on every literal byte.
var literalBufs sync.Pool

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

func getWriter(w io.Writer) *bufio.Writer {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writerPool.Put(bw)
}

func getReader(r io.Reader) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}
