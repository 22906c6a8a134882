package engine

import (
	"bytes"
	"io"
)

const sparseBlock = 4096

var zeroBlock [sparseBlock]byte

// sparseWriter writes a file sequentially, leaving holes where whole
// aligned blocks are zero (--sparse). Finish sets the final size, so that a
// trailing hole is not lost.
type sparseWriter struct {
	f   *tmpFile
	off int64
}

func (s *sparseWriter) Write(p []byte) (int, error) {
	n := len(p)
	runStart, runOff := -1, int64(0) // pending data run in p
	flush := func(end int) error {
		if runStart >= 0 {
			if _, err := s.f.WriteAt(p[runStart:end], runOff); err != nil {
				return err
			}
			runStart = -1
		}
		return nil
	}
	i := 0
	for i < len(p) {
		k := min(len(p)-i, sparseBlock-int(s.off%sparseBlock))
		chunk := p[i : i+k]
		if k == sparseBlock && bytes.Equal(chunk, zeroBlock[:]) {
			if err := flush(i); err != nil {
				return 0, err
			}
		} else if runStart < 0 {
			runStart, runOff = i, s.off
		}
		s.off += int64(k)
		i += k
	}
	if err := flush(len(p)); err != nil {
		return 0, err
	}
	return n, nil
}

// Finish gives the file its full length.
func (s *sparseWriter) Finish() error { return s.f.Truncate(s.off) }

// target returns where a worker writes a file's content.
func (ap *applier) target(f *tmpFile) (io.Writer, func() error) {
	if !ap.o.Sparse {
		return f, func() error { return nil }
	}
	sw := &sparseWriter{f: f}
	return sw, sw.Finish
}
