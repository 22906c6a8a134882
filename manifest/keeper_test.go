package manifest

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// keeperRun feeds next, a new version of base, through a Keeper in step with
// base, as a pass's merge does, and returns what it wrote and whether it
// kept the base.
func keeperRun(t *testing.T, base, next []*Entry) (out []byte, kept bool, opened int) {
	t.Helper()
	enc := encode(t, base)
	var buf bytes.Buffer
	k := NewKeeper(func() (Iterator, func(), error) {
		opened++
		r, err := NewReader(bytes.NewReader(enc))
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	}, func() (*Writer, error) { return NewWriter(&buf) })
	i, j := 0, 0
	for i < len(base) || j < len(next) {
		switch {
		case j == len(next) || i < len(base) && Compare(base[i].Path, next[j].Path) < 0:
			if err := k.Drop(); err != nil {
				t.Fatal(err)
			}
			i++
		case i == len(base) || Compare(next[j].Path, base[i].Path) < 0:
			if err := k.Add(next[j], nil); err != nil {
				t.Fatal(err)
			}
			j++
		default:
			if err := k.Add(next[j], base[i]); err != nil {
				t.Fatal(err)
			}
			i++
			j++
		}
	}
	kept, err := k.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), kept, opened
}

func copies(es []*Entry) []*Entry {
	out := make([]*Entry, len(es))
	for i, e := range es {
		c := *e
		out[i] = &c
	}
	return out
}

func TestKeeperKeepsAnUnchangedBase(t *testing.T) {
	base := randomEntries(rand.New(rand.NewPCG(7, 7)), 500)
	out, kept, opened := keeperRun(t, base, copies(base))
	if !kept || len(out) != 0 || opened != 0 {
		t.Fatalf("unchanged: kept %v, wrote %d bytes, read the base %d times; want kept, nothing written, no read", kept, len(out), opened)
	}
}

// Every kind of difference, at the start, in the middle and at the end,
// gives the manifest a plain Writer would have written.
func TestKeeperWritesWhatDiffers(t *testing.T) {
	base := randomEntries(rand.New(rand.NewPCG(8, 8)), 400)
	type change struct {
		name string
		do   func(next []*Entry, at int) []*Entry
	}
	changes := []change{
		{"mtime", func(n []*Entry, at int) []*Entry { n[at].Mtime++; return n }},
		{"type or hash", func(n []*Entry, at int) []*Entry {
			n[at].Type, n[at].HasHash, n[at].Hash = TypeFile, !n[at].HasHash, 0
			if n[at].HasHash {
				n[at].Hash = 1
			}
			return n
		}},
		{"incomplete", func(n []*Entry, at int) []*Entry { n[at].Incomplete = !n[at].Incomplete; return n }},
		{"xattr", func(n []*Entry, at int) []*Entry {
			n[at].Xattrs = []Xattr{{Name: "user.k", Value: []byte("1")}}
			return n
		}},
		{"deleted", func(n []*Entry, at int) []*Entry { return append(n[:at:at], n[at+1:]...) }},
		{"added", func(n []*Entry, at int) []*Entry {
			e := *n[at]
			e.Path += "~new"
			return append(n[:at+1:at+1], append([]*Entry{&e}, n[at+1:]...)...)
		}},
	}
	for _, c := range changes {
		for _, at := range []int{0, 1, len(base) / 2, len(base) - 1} {
			next := c.do(copies(base), at)
			if c.name == "added" && at+2 < len(next) && Compare(next[at+1].Path, next[at+2].Path) >= 0 {
				continue // the new name does not sort before its neighbour
			}
			out, kept, _ := keeperRun(t, base, next)
			if kept {
				t.Errorf("%s at %d: the base was kept", c.name, at)
				continue
			}
			if want := encode(t, next); !bytes.Equal(out, want) {
				got, err := decodeAll(out)
				t.Errorf("%s at %d: wrote %d bytes (%d entries, %v), a Writer writes %d", c.name, at, len(out), len(got), err, len(want))
			}
		}
	}
}

// A caller that skips a base entry without Drop is out of step: the
// Keeper must say so rather than write a manifest that lost an entry.
func TestKeeperOutOfStep(t *testing.T) {
	base := randomEntries(rand.New(rand.NewPCG(9, 9)), 50)
	enc := encode(t, base)
	k := NewKeeper(func() (Iterator, func(), error) {
		r, err := NewReader(bytes.NewReader(enc))
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	}, func() (*Writer, error) { return NewWriter(&bytes.Buffer{}) })
	for i := range 10 {
		if i == 3 {
			continue // base[3] neither added nor dropped
		}
		if err := k.Add(base[i], base[i]); err != nil {
			t.Fatal(err)
		}
	}
	changed := *base[10]
	changed.Mtime++
	err := k.Add(&changed, base[10])
	if err == nil || !strings.Contains(err.Error(), "out of step") {
		t.Fatalf("skipped base entry: got %v, want an out of step error", err)
	}
}

func TestKeeperWithoutBaseWrites(t *testing.T) {
	entries := randomEntries(rand.New(rand.NewPCG(10, 10)), 100)
	var buf bytes.Buffer
	k := NewKeeper(nil, func() (*Writer, error) { return NewWriter(&buf) })
	for _, e := range entries {
		if err := k.Add(e, e); err != nil {
			t.Fatal(err)
		}
	}
	if kept, err := k.Close(); err != nil || kept {
		t.Fatalf("Close: kept %v, %v", kept, err)
	}
	if !bytes.Equal(buf.Bytes(), encode(t, entries)) {
		t.Fatal("without a base the Keeper did not write every entry")
	}
	buf.Reset()
	k = NewKeeper(nil, func() (*Writer, error) { return NewWriter(&buf) })
	if kept, err := k.Close(); err != nil || kept {
		t.Fatalf("empty Close: kept %v, %v", kept, err)
	}
	if got, err := decodeAll(buf.Bytes()); err != nil || len(got) != 0 {
		t.Fatalf("empty manifest: %d entries, %v", len(got), err)
	}
}
