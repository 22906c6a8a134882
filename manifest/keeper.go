package manifest

import (
	"errors"
	"fmt"
	"io"
)

// Keeper writes the next version of a manifest that often repeats its base
// entry for entry: the manifests of a catch-up pass that found nothing to do.
// While every entry added is the base's own, it writes nothing at all. At
// the first difference it writes the base's entries kept so far (read again
// from the base) and goes on as a Writer. When Close reports that the base
// was kept, the caller keeps the base file: it is the new manifest.
//
// The caller walks the base in step with the entries it adds: Add is given
// the base's entry at the added entry's path, or nil when the base has none,
// and Drop is called for a base entry that the new manifest leaves out.
type Keeper struct {
	open   func() (Iterator, func(), error)
	create func() (*Writer, error)
	w      *Writer
	kept   uint64
	last   string
	closed bool
}

// NewKeeper returns a Keeper over the base that open reads from its start
// (nil: no base, every entry is written). create makes the Writer that the
// Keeper uses from its first difference on.
func NewKeeper(open func() (Iterator, func(), error), create func() (*Writer, error)) *Keeper {
	return &Keeper{open: open, create: create}
}

// Add adds e. old is the base's entry at e.Path, or nil.
func (k *Keeper) Add(e, old *Entry) error {
	if k.closed {
		return errors.New("manifest keeper: Add after Close")
	}
	if k.w == nil && k.open != nil && old != nil && sameRecord(e, old) {
		k.kept++
		k.last = old.Path
		return nil
	}
	if err := k.start(); err != nil {
		return err
	}
	return k.w.Add(e)
}

// Drop records that the base's next entry is not in the new manifest.
func (k *Keeper) Drop() error {
	if k.closed {
		return errors.New("manifest keeper: Drop after Close")
	}
	return k.start()
}

// start makes the Writer and writes the base's entries kept so far.
func (k *Keeper) start() error {
	if k.w != nil {
		return nil
	}
	w, err := k.create()
	if err != nil {
		return err
	}
	k.w = w
	if k.kept == 0 {
		return nil
	}
	it, done, err := k.open()
	if err != nil {
		return fmt.Errorf("manifest keeper: reopen the base: %w", err)
	}
	defer done()
	var e *Entry
	for i := uint64(0); i < k.kept; i++ {
		if e, err = it.Next(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("manifest keeper: base entry %d of %d kept: %w", i+1, k.kept, err)
		}
		if err := w.Add(e); err != nil {
			return err
		}
	}
	if e.Path != k.last {
		return fmt.Errorf("manifest keeper: out of step with the base: its entry %d is %q, the last kept was %q", k.kept, e.Path, k.last)
	}
	return nil
}

// Close finishes the manifest. kept reports that nothing differed from the
// base and nothing was written: the base is the new manifest. Without a
// base, an empty manifest is written.
func (k *Keeper) Close() (kept bool, err error) {
	if k.closed {
		return false, errors.New("manifest keeper: closed twice")
	}
	k.closed = true
	if k.w == nil && k.open != nil {
		return true, nil
	}
	if err := k.start(); err != nil {
		return false, err
	}
	return false, k.w.Close()
}

// Kept returns the number of base entries taken over unchanged so far.
func (k *Keeper) Kept() uint64 { return k.kept }

// sameRecord reports whether a and b encode to the same record.
func sameRecord(a, b *Entry) bool {
	return Equal(a, b) && a.Incomplete == b.Incomplete && a.Gone == b.Gone
}
