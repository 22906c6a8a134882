package manifest

import (
	"fmt"
	"io"
	"os"
)

// Iterator yields entries in Compare order and io.EOF at the end.
type Iterator interface {
	Next() (*Entry, error)
}

// SliceIterator iterates over entries held in memory.
type SliceIterator struct {
	Entries []*Entry
	i       int
}

// Next implements Iterator.
func (s *SliceIterator) Next() (*Entry, error) {
	if s.i >= len(s.Entries) {
		return nil, io.EOF
	}
	e := s.Entries[s.i]
	s.i++
	return e, nil
}

// Empty is an Iterator with no entries.
var Empty Iterator = &SliceIterator{}

// Peeker wraps an Iterator with one entry of look-ahead.
type Peeker struct {
	it   Iterator
	cur  *Entry
	err  error
	read bool
}

// NewPeeker returns a Peeker over it; a nil it behaves as Empty.
func NewPeeker(it Iterator) *Peeker {
	if it == nil {
		it = Empty
	}
	return &Peeker{it: it}
}

// Peek returns the next entry without consuming it; nil at the end.
func (p *Peeker) Peek() (*Entry, error) {
	if !p.read {
		p.cur, p.err = p.it.Next()
		p.read = true
		if p.err == io.EOF {
			p.cur, p.err = nil, nil
		}
	}
	return p.cur, p.err
}

// Take consumes the entry returned by Peek.
func (p *Peeker) Take() { p.read = false; p.cur = nil }

// Diff merge-joins two sorted streams and calls fn for every path present in
// either: (old, nil) for paths only in old, (nil, new) for paths only in new
// and (old, new) for paths in both. fn decides what "changed" means.
func Diff(old, new Iterator, fn func(o, n *Entry) error) error {
	po, pn := NewPeeker(old), NewPeeker(new)
	for {
		o, err := po.Peek()
		if err != nil {
			return err
		}
		n, err := pn.Peek()
		if err != nil {
			return err
		}
		switch {
		case o == nil && n == nil:
			return nil
		case n == nil || (o != nil && Compare(o.Path, n.Path) < 0):
			po.Take()
			err = fn(o, nil)
		case o == nil || Compare(o.Path, n.Path) > 0:
			pn.Take()
			err = fn(nil, n)
		default:
			po.Take()
			pn.Take()
			err = fn(o, n)
		}
		if err != nil {
			return err
		}
	}
}

// FileReader is a Reader over an open manifest file.
type FileReader struct {
	*Reader
	f    *os.File
	path string
}

// Next wraps errors with the file's path.
func (r *FileReader) Next() (*Entry, error) {
	e, err := r.Reader.Next()
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", r.path, err)
	}
	return e, err
}

// Close closes the file.
func (r *FileReader) Close() error {
	r.Reader.Close()
	return r.f.Close()
}

// Open opens a manifest file for reading.
func Open(path string) (*FileReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &FileReader{Reader: r, f: f, path: path}, nil
}

// ReadAll reads every entry of it into memory.
func ReadAll(it Iterator) ([]*Entry, error) {
	var out []*Entry
	for {
		e, err := it.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
}

// Union merges sorted streams into one sorted stream without duplicates;
// for a path in several, the entry of the earliest stream wins.
func Union(its ...Iterator) Iterator {
	ps := make([]*Peeker, len(its))
	for i, it := range its {
		ps[i] = NewPeeker(it)
	}
	return &union{ps: ps}
}

type union struct{ ps []*Peeker }

func (u *union) Next() (*Entry, error) {
	var best *Entry
	for _, p := range u.ps {
		e, err := p.Peek()
		if err != nil {
			return nil, err
		}
		if e != nil && (best == nil || Compare(e.Path, best.Path) < 0) {
			best = e
		}
	}
	if best == nil {
		return nil, io.EOF
	}
	path := best.Path
	var out *Entry
	for _, p := range u.ps {
		if e, _ := p.Peek(); e != nil && e.Path == path {
			if out == nil {
				out = e
			}
			p.Take()
		}
	}
	return out, nil
}

// Prefix yields the entries of a possibly truncated manifest up to the
// first damage: what a killed writer managed to write. Use it only where a
// short list is safe.
type Prefix struct{ It Iterator }

// Next implements Iterator; any error ends the stream.
func (p Prefix) Next() (*Entry, error) {
	e, err := p.It.Next()
	if err != nil {
		return nil, io.EOF
	}
	return e, nil
}

// Patch applies a diff stream (FlagDiff) to the base it was made against:
// it yields base's entries, replaced or removed as diff says, and the new
// ones, in order. A deletion of a path base does not have is corruption.
func Patch(base, diff Iterator) Iterator {
	return &patch{b: NewPeeker(base), d: NewPeeker(diff)}
}

type patch struct{ b, d *Peeker }

func (p *patch) Next() (*Entry, error) {
	for {
		b, err := p.b.Peek()
		if err != nil {
			return nil, err
		}
		d, err := p.d.Peek()
		if err != nil {
			return nil, err
		}
		switch {
		case b == nil && d == nil:
			return nil, io.EOF
		case d == nil || b != nil && Compare(b.Path, d.Path) < 0:
			p.b.Take()
			return b, nil
		case b == nil || Compare(d.Path, b.Path) < 0:
			p.d.Take()
			if d.Gone {
				return nil, corrupt("diff deletes %q, which its base does not have", d.Path)
			}
			return d, nil
		default: // same path
			p.b.Take()
			p.d.Take()
			if d.Gone {
				continue
			}
			return d, nil
		}
	}
}

// SameScan reports whether two scans of a path agree in everything a diff
// stream carries.
func SameScan(a, b *Entry) bool { return Equal(a, b) && a.Incomplete == b.Incomplete }

// Compacted returns e as a compact stream carries it (FlagCompact): without
// device and inode unless it is hard-linked.
func Compacted(e *Entry) *Entry {
	if compactID(e, true) || (e.Dev == 0 && e.Inode == 0) {
		return e
	}
	c := *e
	c.Dev, c.Inode = 0, 0
	return &c
}
