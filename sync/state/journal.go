package state

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// The journal is the write-ahead record of the names a pass makes visible
// at the destination. Before a pass renames, links or creates a name there,
// the name is in the journal, written with write(2) (no user-space buffer a
// kill could lose) and, when the pass syncs every file, fsync'ed. A pass
// that is killed leaves its journal; the next pass takes every name in it
// for one msync put there, exactly like a name of the last committed source
// manifest: deleted when the source no longer has it. A pass that commits
// removes the journals it took into account and its own.
//
// The file is a header line, then one record per name: a manifest.Type
// byte, the path, a NUL. A pass appends names in its merge's order
// (manifest.Compare), so the journal is read as a sorted stream.

const journalMagic = "msync-journal 1\n"

// JournalPath is where a running pass keeps its journal.
func (d *Dir) JournalPath() string { return filepath.Join(d.Path, "journal") }

// TakeJournals moves the journal a killed pass left behind aside and
// returns every such journal not yet settled (SettleInterrupted removes
// them once a pass that took them into account has committed).
func (d *Dir) TakeJournals() ([]string, error) {
	if _, err := os.Lstat(d.JournalPath()); err == nil {
		aside := fmt.Sprintf("%s.interrupted.%d", d.JournalPath(), time.Now().UnixNano())
		if err := os.Rename(d.JournalPath(), aside); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
	}
	return filepath.Glob(d.JournalPath() + ".interrupted.*")
}

// Journals returns the journals TakeJournals would take, without moving
// any: for a dry run.
func (d *Dir) Journals() []string {
	if d.fresh {
		return nil
	}
	out, _ := filepath.Glob(d.JournalPath() + ".interrupted.*")
	if _, err := os.Lstat(d.JournalPath()); err == nil {
		out = append(out, d.JournalPath())
	}
	return out
}

// Journal appends a pass's intents to its journal file. Add is called in
// the pass's merge order; Ensure, from any goroutine, makes an intent (and
// every one added before it) durable against a kill of the process with one
// write of everything added so far, so that many names cost one write.
type Journal struct {
	path string
	sync bool // fdatasync after each write

	mu      sync.Mutex
	fd      int // -1 until the first write
	buf     []byte
	added   uint64 // intents added
	written uint64 // intents written
	last    string // the last path added, to check the order
	err     error  // sticky: a journal that failed once proves nothing more
}

// NewJournal starts the journal of a pass; the file is created on the first
// write, so a pass that makes no name visible writes nothing. With sync,
// every write is followed by fdatasync (power loss as well as kills).
func (d *Dir) NewJournal(sync bool) *Journal {
	return &Journal{path: d.JournalPath(), sync: sync, fd: -1}
}

// Add records that path (of type t) is about to become visible and returns
// its sequence number for Ensure. Paths must come in manifest.Compare order.
func (j *Journal) Add(path string, t manifest.Type) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.added > 0 && manifest.Compare(j.last, path) >= 0 && j.err == nil {
		j.err = fmt.Errorf("state journal: %q added after %q (out of order)", path, j.last)
	}
	j.last = path
	j.buf = append(j.buf, byte(t))
	j.buf = append(j.buf, path...)
	j.buf = append(j.buf, 0)
	j.added++
	return j.added
}

// Ensure returns once the intent seq (from Add) is in the journal file.
func (j *Journal) Ensure(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if seq <= j.written {
		return nil
	}
	if j.fd < 0 {
		fd, err := unix.Open(j.path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_APPEND|unix.O_CLOEXEC, 0o600)
		if err != nil {
			j.err = fmt.Errorf("state journal %s: %w", j.path, err)
			return j.err
		}
		j.fd = fd
		j.buf = append([]byte(journalMagic), j.buf...)
		if j.sync {
			// The journal's name, too, must outlive a power cut.
			if err := syncDir(filepath.Dir(j.path)); err != nil {
				j.err = fmt.Errorf("state journal %s: sync its directory: %w", j.path, err)
				return j.err
			}
		}
	}
	for b := j.buf; len(b) > 0; {
		n, err := unix.Write(j.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			j.err = fmt.Errorf("state journal %s: write: %w", j.path, err)
			return j.err
		}
		b = b[n:]
	}
	if j.sync {
		if err := unix.Fdatasync(j.fd); err != nil {
			j.err = fmt.Errorf("state journal %s: fdatasync: %w", j.path, err)
			return j.err
		}
	}
	j.buf = j.buf[:0]
	j.written = j.added
	return nil
}

// Close closes the journal file; the journal stays until SettleInterrupted
// removes it.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fd < 0 {
		return nil
	}
	err := unix.Close(j.fd)
	j.fd = -1
	return err
}

// JournalReader yields the names of a journal as manifest entries that
// carry only a path and a type, in order, and io.EOF at the end. A torn or
// damaged tail (a crash while the record was written) ends the stream: what
// was written before it stands.
type JournalReader struct {
	f    *os.File
	r    *bufio.Reader
	last string
	n    int
}

// OpenJournal opens a journal for reading. A journal killed before it wrote
// its header reads as empty.
func OpenJournal(path string) (*JournalReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("state journal: %w", err)
	}
	r := bufio.NewReaderSize(f, manifest.MaxPathLen+2)
	head := make([]byte, len(journalMagic))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != journalMagic {
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if err == nil {
				f.Close()
				return nil, fmt.Errorf("state journal %s: not a journal", path)
			}
			r = bufio.NewReader(eofReader{})
		} else {
			f.Close()
			return nil, fmt.Errorf("state journal %s: %w", path, err)
		}
	}
	return &JournalReader{f: f, r: r}, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// Next implements manifest.Iterator.
func (j *JournalReader) Next() (*manifest.Entry, error) {
	t, err := j.r.ReadByte()
	if err != nil {
		return nil, io.EOF
	}
	b, err := j.r.ReadSlice(0)
	if err != nil {
		return nil, io.EOF // torn last record, or no NUL within a path's length
	}
	path := string(b[:len(b)-1])
	if !manifest.Type(t).Valid() || path == "" || manifest.ValidPath(path) != nil {
		return nil, io.EOF // damage: the records before it stand
	}
	if j.n > 0 && manifest.Compare(j.last, path) >= 0 {
		return nil, fmt.Errorf("state journal %s: %q after %q: out of order", j.f.Name(), path, j.last)
	}
	j.last = path
	j.n++
	return &manifest.Entry{Path: path, Type: manifest.Type(t)}, nil
}

// Close closes the file.
func (j *JournalReader) Close() error { return j.f.Close() }

func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}
