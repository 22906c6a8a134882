package manifest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// A state manifest carries its identity record back to the reader, under
// the trailer's checksum; one written without has none.
func TestIdentityRecord(t *testing.T) {
	in := randomEntries(rand.New(rand.NewPCG(5, 6)), 50)
	id := []byte(`{"src":{"path":"/srv/a"},"dst":{"path":"/srv/b"}}`)
	b := encodeWith(t, func(w io.Writer) (*Writer, error) { return NewStateWriterFor(w, id) }, in)
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Identity(); !bytes.Equal(got, id) {
		t.Errorf("identity %q, want %q", got, id)
	}
	out, err := ReadAll(r)
	if err != nil || len(out) != len(in) {
		t.Fatalf("entries after the identity: %d, %v", len(out), err)
	}
	r, err = NewReader(bytes.NewReader(encodeWith(t, NewStateWriter, in)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Identity() != nil {
		t.Error("a manifest written without identity has one")
	}

	// The checksum covers the identity: another pair's name spliced in
	// (same length) is detected.
	bad := bytes.Replace(bytes.Clone(b), []byte("/srv/b"), []byte("/srv/c"), 1)
	if _, err := decodeAll(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("identity changed without its checksum: %v, want ErrCorrupt", err)
	}
	// The flag without the record.
	plain := encodeWith(t, NewStateWriter, in)
	binary.LittleEndian.PutUint16(plain[10:], FlagXXH64|FlagIdentity)
	if _, err := decodeAll(plain); !errors.Is(err, ErrCorrupt) {
		t.Errorf("identity flag without a record: %v, want ErrCorrupt", err)
	}
	if _, err := NewStateWriterFor(&bytes.Buffer{}, nil); err == nil {
		t.Error("an empty identity accepted")
	}
	if _, err := NewStateWriterFor(&bytes.Buffer{}, make([]byte, MaxIdentity+1)); err == nil {
		t.Error("an identity over the bound accepted")
	}
}
