package rsync

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/msync/msync/sync/state"
	"golang.org/x/sys/unix"
)

// A spill carries the stream of a large answer that nobody reads yet: the
// connection's single reader must go on to the answers behind it (a worker
// may be waiting for one of them), so it writes the stream to an unlinked
// temp file and never waits. Memory stays bounded whatever the size of the
// file. Once the reader of the spill has caught up and waits for more, the
// rest of the stream goes through a pipe instead, as for an answer a
// worker was already reading: no more copies through the file, and the
// connection waits for that worker again, which is safe now that it reads.
type spill struct {
	mu   sync.Mutex
	cond sync.Cond
	f    *os.File
	// written and read are offsets in f; werr ends the stream once read
	// has caught up with written (io.EOF, or the writer's error).
	written, read int64
	werr          error
	// waiting: the reader has caught up and waits; piped: the rest of the
	// stream goes through pr and pw.
	waiting, piped bool
	pr             *io.PipeReader
	pw             *io.PipeWriter
	closed         error // the reader's end was closed with this
	wclosed        bool  // the writer's end was closed
	ends           int   // ends not closed yet; the file is closed with the last
}

// newSpill makes a spill in dir (the system's temp directory when empty).
func newSpill(dir string) (*spill, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := openUnlinked(dir)
	if err != nil {
		return nil, err
	}
	s := &spill{f: f, ends: 2}
	s.cond.L = &s.mu
	s.pr, s.pw = io.Pipe()
	return s, nil
}

// openUnlinked opens a temp file in dir with no name: O_TMPFILE, or a
// named temp removed at once where the file system refuses it.
func openUnlinked(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), dir+"/(spill)"), nil
	}
	f, cerr := os.CreateTemp(dir, state.SpillPrefix+"*")
	if cerr != nil {
		return nil, fmt.Errorf("temp file for an answer in %s: %w", dir, errors.Join(err, cerr))
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("temp file for an answer: %w", err)
	}
	return f, nil
}

// release closes one end; the file goes with the last. s.mu is held.
func (s *spill) release() {
	s.ends--
	if s.ends == 0 {
		s.f.Close()
	}
}

// Write appends p to the stream; it waits only once the stream is piped.
func (s *spill) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.closed != nil {
		s.mu.Unlock()
		return 0, s.closed
	}
	if !s.piped && s.waiting {
		// The reader read everything so far and waits: hand it the rest
		// directly.
		s.piped = true
		s.cond.Broadcast()
	}
	if s.piped {
		s.mu.Unlock()
		return s.pw.Write(p)
	}
	off := s.written
	s.mu.Unlock()
	// Only this writer moves written, and the reader reads below it.
	n, err := s.f.WriteAt(p, off)
	s.mu.Lock()
	s.written += int64(n)
	s.cond.Broadcast()
	s.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("temp file for an answer: %w", err)
	}
	return n, nil
}

// CloseWrite ends the stream: with io.EOF when err is nil.
func (s *spill) CloseWrite(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wclosed {
		return
	}
	s.wclosed = true
	if err == nil {
		err = io.EOF
	}
	if s.piped {
		if err == io.EOF {
			s.pw.Close()
		} else {
			s.pw.CloseWithError(err)
		}
	} else if s.werr == nil {
		s.werr = err
	}
	s.cond.Broadcast()
	s.release()
}

// Read returns what was written, in order, waiting for more.
func (s *spill) Read(p []byte) (int, error) {
	s.mu.Lock()
	for {
		if s.closed != nil {
			s.mu.Unlock()
			return 0, s.closed
		}
		if s.read < s.written {
			off, n := s.read, min(int64(len(p)), s.written-s.read)
			s.mu.Unlock()
			// The file stays open until this end is closed, which its
			// own reader does not do while it reads.
			m, err := s.f.ReadAt(p[:n], off)
			s.mu.Lock()
			s.read += int64(m)
			s.mu.Unlock()
			if err != nil && m < int(n) {
				return m, fmt.Errorf("temp file for an answer: %w", err)
			}
			return m, nil
		}
		if s.piped {
			s.mu.Unlock()
			return s.pr.Read(p)
		}
		if s.werr != nil {
			s.mu.Unlock()
			return 0, s.werr
		}
		s.waiting = true
		s.cond.Wait()
		s.waiting = false
	}
}

// CloseRead abandons the rest of the stream: the writer's next write
// returns err.
func (s *spill) CloseRead(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != nil {
		return
	}
	if err == nil {
		err = io.ErrClosedPipe
	}
	s.closed = err
	s.pr.CloseWithError(err)
	s.cond.Broadcast()
	s.release()
}
