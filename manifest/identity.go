package manifest

import (
	"fmt"
	"io"
)

// MaxIdentity bounds an identity record.
const MaxIdentity = 16 << 10

// NewStateWriterFor is NewStateWriter for a manifest that names what it
// describes: ident, opaque to this package (the state directory's pair of
// trees), is written as the body's first record (FlagIdentity) and read
// back by Reader.Identity. The trailer's checksum covers it.
func NewStateWriterFor(w io.Writer, ident []byte) (*Writer, error) {
	if len(ident) == 0 || len(ident) > MaxIdentity {
		return nil, fmt.Errorf("manifest writer: identity of %d bytes (want 1..%d)", len(ident), MaxIdentity)
	}
	mw, err := newWriter(w, FlagXXH64|FlagIdentity)
	if err != nil {
		return nil, err
	}
	if err := mw.record(tagIdentity, ident); err != nil {
		return nil, err
	}
	return mw, nil
}

// Identity returns the identity record of a manifest written by
// NewStateWriterFor; nil for one written without (FlagIdentity unset).
func (r *Reader) Identity() []byte { return r.ident }

// readIdentity reads the identity record that FlagIdentity announces.
func (r *Reader) readIdentity() error {
	tag, p, err := r.record()
	if err != nil {
		return err
	}
	if tag != tagIdentity {
		return corrupt("identity flag without an identity record (tag %#x)", tag)
	}
	if len(p) == 0 || len(p) > MaxIdentity {
		return corrupt("identity record of %d bytes (want 1..%d)", len(p), MaxIdentity)
	}
	r.ident = append([]byte(nil), p...)
	r.release()
	return nil
}
