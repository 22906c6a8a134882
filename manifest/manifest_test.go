package manifest

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/klauspost/compress/zstd"
)

func TestCompareOrdersByComponents(t *testing.T) {
	paths := []string{"a.b", "a/b", "", "a", "a/b/c", "a-", "b", "a/b.c", "a/b/c/d", "a/a"}
	slices.SortFunc(paths, Compare)
	want := []string{"", "a", "a/a", "a/b", "a/b/c", "a/b/c/d", "a/b.c", "a-", "a.b", "b"}
	if !slices.Equal(paths, want) {
		t.Fatalf("got %q\nwant %q", paths, want)
	}
	for _, p := range want[1:] {
		if !IsAncestor("", p) {
			t.Errorf("root should be ancestor of %q", p)
		}
	}
	if !IsAncestor("a/b", "a/b/c") || IsAncestor("a/b", "a/b.c") || IsAncestor("a/b", "a/b") {
		t.Error("IsAncestor wrong")
	}
}

func TestValidPath(t *testing.T) {
	for _, p := range []string{"/etc", "a/../b", "..", "a//b", "a/", "./a", "a/./b", "a\x00b", strings.Repeat("x", 256)} {
		if ValidPath(p) == nil {
			t.Errorf("ValidPath(%q) accepted", p)
		}
	}
	for _, p := range []string{"", "a", "a b/c\nd", "\xff\xfe", ".hidden/..x", strings.Repeat("x", 255)} {
		if err := ValidPath(p); err != nil {
			t.Errorf("ValidPath(%q): %v", p, err)
		}
	}
}

func randomEntries(r *rand.Rand, n int) []*Entry {
	seen := map[string]bool{"": true}
	out := []*Entry{{Path: "", Type: TypeDir, Mode: 0o755, Mtime: -5}}
	names := []string{"a", "b", "mbox", "x y", "\xff", "é", "c.d", "_darcs"}
	for len(out) < n {
		depth := 1 + r.IntN(4)
		var parts []string
		for range depth {
			parts = append(parts, names[r.IntN(len(names))]+strconv.Itoa(r.IntN(20)))
		}
		p := strings.Join(parts, "/")
		if seen[p] {
			continue
		}
		seen[p] = true
		e := &Entry{Path: p, Type: Type(1 + r.IntN(7)), Mode: uint32(r.IntN(0o7777)), UID: r.Uint32(), GID: r.Uint32(),
			Mtime: r.Int64() - 1<<62, Ctime: r.Int64(), Dev: r.Uint64(), Inode: r.Uint64(), Nlink: r.Uint32(), Rdev: r.Uint64()}
		if e.Type == TypeFile {
			e.Size = r.Int64N(1 << 40)
			e.HasHash = r.IntN(2) == 0
			e.Hash = r.Uint64()
			if !e.HasHash {
				e.Hash = 0
			}
		}
		if e.Type == TypeSymlink {
			e.LinkTarget = strings.Repeat("../t", r.IntN(5))
			e.Size = int64(len(e.LinkTarget))
		}
		if r.IntN(4) == 0 {
			e.Xattrs = []Xattr{{Name: "user.a", Value: []byte("v")}, {Name: "user.b", Value: nil}}
		}
		out = append(out, e)
	}
	// Parents must exist for a realistic tree but the format does not care.
	slices.SortFunc(out, func(a, b *Entry) int { return Compare(a.Path, b.Path) })
	return out
}

func encode(t testing.TB, entries []*Entry) []byte { return encodeWith(t, NewWriter, entries) }

// writers are the constructors whose output every reader must take back.
var writers = []struct {
	name string
	new  func(io.Writer) (*Writer, error)
}{{"zstd", NewWriter}, {"plain", NewStateWriter}, {"identity", func(w io.Writer) (*Writer, error) {
	return NewStateWriterFor(w, []byte(`{"src":{"path":"/a"},"dst":{"path":"/b"}}`))
}}}

func encodeWith(t testing.TB, newWriter func(io.Writer) (*Writer, error), entries []*Entry) []byte {
	var buf bytes.Buffer
	w, err := newWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeAll(b []byte) ([]*Entry, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	for _, wr := range writers {
		r := rand.New(rand.NewPCG(1, 2))
		for _, n := range []int{0, 1, 2, 100, 3000} {
			in := randomEntries(r, n)
			if n == 0 {
				in = nil
			}
			got, err := decodeAll(encodeWith(t, wr.new, in))
			if err != nil {
				t.Fatalf("%s, n=%d: %v", wr.name, n, err)
			}
			if len(got) != len(in) {
				t.Fatalf("%s, n=%d: got %d entries", wr.name, n, len(got))
			}
			for i := range in {
				if !Equal(in[i], got[i]) {
					t.Fatalf("%s: entry %d: got %+v want %+v", wr.name, i, got[i], in[i])
				}
			}
		}
	}
}

// TestStateWriterIsPlain: the state manifests skip compression (see
// NewStateWriter), and read back the same entries.
func TestStateWriterIsPlain(t *testing.T) {
	in := randomEntries(rand.New(rand.NewPCG(9, 10)), 200)
	z, plain := encode(t, in), encodeWith(t, NewStateWriter, in)
	if flags := binary.LittleEndian.Uint16(plain[10:]); flags&FlagZstd != 0 {
		t.Fatalf("state manifest flags %#x: compressed", flags)
	}
	if flags := binary.LittleEndian.Uint16(z[10:]); flags&FlagZstd == 0 {
		t.Fatalf("NewWriter flags %#x: not compressed", flags)
	}
	zs, err := decodeAll(z)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := decodeAll(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(zs, ps, Equal) {
		t.Fatal("the two encodings read back different entries")
	}
}

func TestWriterRejectsUnsortedAndBadPaths(t *testing.T) {
	w, _ := NewWriter(io.Discard)
	if err := w.Add(&Entry{Path: "b", Type: TypeFile}); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(&Entry{Path: "a", Type: TypeFile}); err == nil {
		t.Error("out of order entry accepted")
	}
	if err := w.Add(&Entry{Path: "b", Type: TypeFile}); err == nil {
		t.Error("duplicate accepted")
	}
	if err := w.Add(&Entry{Path: "c/../d", Type: TypeFile}); err == nil {
		t.Error("dot-dot accepted")
	}
}

func TestCorruptionDetected(t *testing.T) {
	for _, wr := range writers {
		t.Run(wr.name, func(t *testing.T) { testCorruptionDetected(t, wr.new) })
	}
}

func testCorruptionDetected(t *testing.T, newWriter func(io.Writer) (*Writer, error)) {
	in := randomEntries(rand.New(rand.NewPCG(3, 4)), 500)
	good := encodeWith(t, newWriter, in)
	// Truncation anywhere must fail, never return a short list silently.
	for _, cut := range []int{0, 5, 12, 13, len(good) / 2, len(good) - 1} {
		if _, err := decodeAll(good[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated at %d of %d: err = %v, want ErrCorrupt", cut, len(good), err)
		}
	}
	// Flipping a byte of the body must fail.
	for i := 12; i < len(good); i += len(good) / 37 {
		bad := bytes.Clone(good)
		bad[i] ^= 0x40
		if _, err := decodeAll(bad); err == nil {
			t.Errorf("flipped byte %d not detected", i)
		}
	}
	// Trailing garbage after the compressed stream.
	if _, err := decodeAll(append(bytes.Clone(good), 0x28, 0xb5, 0x2f, 0xfd)); err == nil {
		t.Error("trailing data accepted")
	}
	// Future version.
	bad := bytes.Clone(good)
	bad[8] = 9
	if _, err := decodeAll(bad); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("version check: %v", err)
	}
}

func TestDiff(t *testing.T) {
	mk := func(paths ...string) Iterator {
		var es []*Entry
		for _, p := range paths {
			es = append(es, &Entry{Path: p, Type: TypeFile})
		}
		return &SliceIterator{Entries: es}
	}
	var got []string
	err := Diff(mk("", "a", "a/x", "c", "d"), mk("", "a", "a/y", "b", "d", "e"), func(o, n *Entry) error {
		switch {
		case n == nil:
			got = append(got, "-"+o.Path)
		case o == nil:
			got = append(got, "+"+n.Path)
		default:
			got = append(got, "="+n.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"=", "=a", "-a/x", "+a/y", "+b", "-c", "=d", "+e"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestEscapeLikeRsync(t *testing.T) {
	// The expectations are what rsync 3.5.0 -i printed for the same names.
	for in, want := range map[string]string{
		"new\nline":  `new\#012line`,
		"bad-\xff":   `bad-\#377`,
		"tab\tx":     "tab\tx",
		"é":          "é",
		`back\slash`: `back\slash`,
		"del\x7f":    `del\#177`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMtreeVis(t *testing.T) {
	if got := mtreeVis("a b\n#\xff"); got != `a\040b\012\043\377` {
		t.Errorf("got %q", got)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(encode(f, randomEntries(rand.New(rand.NewPCG(5, 6)), 20)))
	f.Add(encode(f, nil))
	f.Add(encodeWith(f, NewStateWriter, randomEntries(rand.New(rand.NewPCG(5, 6)), 20)))
	f.Add(encodeWith(f, func(w io.Writer) (*Writer, error) {
		return NewStateWriterFor(w, []byte(`{"src":{"host":"h","path":"/s"},"dst":{"host":"h","path":"/d"}}`))
	}, randomEntries(rand.New(rand.NewPCG(7, 8)), 5)))
	f.Add([]byte("MSYNCMAN\x01\x00\x03\x00garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := decodeAll(data)
		if err != nil {
			return
		}
		// Whatever decodes must be valid, sorted and re-encode identically.
		total := 0
		for i, e := range entries {
			if ValidPath(e.Path) != nil || (i > 0 && Compare(entries[i-1].Path, e.Path) >= 0) {
				t.Fatalf("decoder returned invalid or unsorted entry %q", e.Path)
			}
			total += len(e.Path)
		}
		if total > 4<<20 {
			return // a small input can expand to huge path data; enough checked
		}
		again, err := decodeAll(encode(t, entries))
		if err != nil || len(again) != len(entries) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	in := randomEntries(rand.New(rand.NewPCG(7, 8)), 10000)
	size := len(encode(b, in))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		w, _ := NewWriter(io.Discard)
		for _, e := range in {
			if err := w.Add(e); err != nil {
				b.Fatal(err)
			}
		}
		w.Close()
	}
	b.ReportMetric(float64(size)/float64(len(in)), "bytes/entry")
}

func BenchmarkDecode(b *testing.B) { benchDecode(b, NewWriter) }

// BenchmarkDecodeState reads the uncompressed manifests that a state
// directory keeps, which every catch-up pass decodes twice.
func BenchmarkDecodeState(b *testing.B) { benchDecode(b, NewStateWriter) }

func benchDecode(b *testing.B, newWriter func(io.Writer) (*Writer, error)) {
	data := encodeWith(b, newWriter, randomEntries(rand.New(rand.NewPCG(7, 8)), 10000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeAll(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUnionMergesWithoutDuplicates(t *testing.T) {
	mk := func(tag string, paths ...string) Iterator {
		var es []*Entry
		for _, p := range paths {
			es = append(es, &Entry{Path: p, Type: TypeFile, LinkTarget: tag})
		}
		return &SliceIterator{Entries: es}
	}
	got, err := ReadAll(Union(mk("a", "", "b", "d"), mk("b", "b", "c"), mk("c", "a", "d/x")))
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range got {
		s = append(s, e.Path+":"+e.LinkTarget)
	}
	want := []string{":a", "a:c", "b:a", "c:b", "d:a", "d/x:c"}
	if !slices.Equal(s, want) {
		t.Fatalf("Union = %q, want %q", s, want)
	}
}

// A compact stream keeps everything but the device and inode of entries
// that are not hard-linked files, and is smaller.
func TestCompactRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := randomEntries(r, 3000)
	var buf bytes.Buffer
	w, err := NewCompactWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range in {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := decodeAll(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d entries", len(got))
	}
	hard := 0
	for i := range in {
		want := *in[i]
		if !want.IsHardlinked() {
			want.Dev, want.Inode = 0, 0
		} else {
			hard++
		}
		if !Equal(&want, got[i]) {
			t.Fatalf("entry %d: got %+v want %+v", i, got[i], want)
		}
	}
	if hard == 0 {
		t.Fatal("no hard-linked entries in the sample: the test proves nothing")
	}
	if full := encode(t, in); len(buf.Bytes()) >= len(full) {
		t.Errorf("compact stream %d bytes, full %d", buf.Len(), len(full))
	}
}

// A diff made with Diff/SameScan and applied with Patch rebuilds the new
// scan exactly, and its Sum matches.
func TestDiffStreamPatch(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var base []*Entry
	for _, e := range randomEntries(r, 2000) {
		base = append(base, Compacted(e))
	}
	var next []*Entry
	for i, e := range base {
		switch {
		case i%50 == 7 && e.Path != "":
			continue // deleted
		case i%40 == 3:
			c := *e
			c.Mtime++
			next = append(next, &c)
		case i%97 == 5 && e.Type == TypeDir:
			c := *e
			c.Incomplete = true
			next = append(next, &c)
		default:
			next = append(next, e)
		}
	}
	var diff, full bytes.Buffer
	dw, _ := NewDiffWriter(&diff)
	fw, _ := NewCompactWriter(&full)
	changed := 0
	err := Diff(&SliceIterator{Entries: base}, &SliceIterator{Entries: next}, func(o, n *Entry) error {
		if n != nil {
			fw.Add(n)
		}
		switch {
		case n == nil:
			g := *o
			g.Gone = true
			changed++
			return dw.Add(&g)
		case o == nil || !SameScan(o, n):
			changed++
			return dw.Add(n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dw.Close()
	fw.Close()
	if changed == 0 || diff.Len() >= full.Len()/2 {
		t.Fatalf("diff of %d changes is %d bytes, full %d", changed, diff.Len(), full.Len())
	}
	dr, err := NewReader(bytes.NewReader(diff.Bytes()))
	if err != nil || !dr.Diff() {
		t.Fatalf("diff reader: %v", err)
	}
	var out bytes.Buffer
	ow, _ := NewCompactWriter(&out)
	got, err := ReadAll(Patch(&SliceIterator{Entries: base}, dr))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(next) {
		t.Fatalf("patched %d entries, want %d", len(got), len(next))
	}
	for i := range got {
		if !SameScan(got[i], next[i]) {
			t.Fatalf("entry %d: %+v want %+v", i, got[i], next[i])
		}
		ow.Add(got[i])
	}
	ow.Close()
	if ow.Sum() != fw.Sum() {
		t.Error("the patched scan's Sum differs from the new scan's")
	}
	// A deletion is refused outside diff streams, and of an unknown path.
	w, _ := NewCompactWriter(&bytes.Buffer{})
	if err := w.Add(&Entry{Path: "", Type: TypeDir, Gone: true}); err == nil {
		t.Error("Gone entry accepted by a compact writer")
	}
	var bad bytes.Buffer
	bw, _ := NewDiffWriter(&bad)
	bw.Add(&Entry{Path: "zzz-not-in-base", Type: TypeFile, Gone: true})
	bw.Close()
	br, _ := NewReader(bytes.NewReader(bad.Bytes()))
	if _, err := ReadAll(Patch(&SliceIterator{Entries: base}, br)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("deletion of an unknown path: %v", err)
	}
}

// Manifests written before the encoder's window shrank to 256 KiB (zstd's
// default window then) still read back the same: state directories of
// earlier passes stay usable. The frame must declare a window larger than
// the new one, or the test proves nothing.
func TestReadsManifestsWithALargerWindow(t *testing.T) {
	in := randomEntries(rand.New(rand.NewPCG(3, 4)), 20000)
	data := encode(t, in)
	zr, err := zstd.NewReader(bytes.NewReader(data[12:]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	var old bytes.Buffer
	old.Write(data[:12])
	zw, _ := zstd.NewWriter(&old, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(4<<20))
	zw.Write(raw)
	zw.Close()
	var hdr zstd.Header
	if err := hdr.Decode(old.Bytes()[12:]); err != nil || hdr.WindowSize <= 256<<10 {
		t.Fatalf("old-style frame: window %d, err %v", hdr.WindowSize, err)
	}
	if err := hdr.Decode(data[12:]); err != nil || hdr.WindowSize > 256<<10 {
		t.Fatalf("new frame: window %d, err %v; want at most 256 KiB", hdr.WindowSize, err)
	}
	got, err := decodeAll(old.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("%d entries read back, want %d", len(got), len(in))
	}
	for i := range in {
		if !reflect.DeepEqual(got[i], in[i]) {
			t.Fatalf("entry %d: %+v, want %+v", i, got[i], in[i])
		}
	}
}

// compareRef is Compare's definition, one byte at a time.
func compareRef(a, b string) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		ca, cb := a[i], b[i]
		switch {
		case ca == cb:
			continue
		case ca == '/':
			return -1
		case cb == '/':
			return 1
		case ca < cb:
			return -1
		}
		return 1
	}
	return cmp.Compare(len(a), len(b))
}

func TestCompareMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := "ab./-\x00\xff"
	for range 200000 {
		// A shared prefix of 0-40 bytes, then different tails: mismatches
		// land at every offset within and across 8-byte words.
		prefix := randString(r, alphabet, r.IntN(41))
		a := prefix + randString(r, alphabet, r.IntN(12))
		b := prefix + randString(r, alphabet, r.IntN(12))
		if got, want := Compare(a, b), compareRef(a, b); got != want {
			t.Fatalf("Compare(%q, %q) = %d, want %d", a, b, got, want)
		}
	}
}

func FuzzCompare(f *testing.F) {
	f.Add("home/u1/Maildir/cur/1.a", "home/u1/Maildir/cur/1/a")
	f.Add("a.b", "a/b")
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := Compare(a, b), compareRef(a, b); got != want {
			t.Fatalf("Compare(%q, %q) = %d, want %d", a, b, got, want)
		}
		if Compare(a, b) != -Compare(b, a) {
			t.Fatalf("Compare(%q, %q) is not antisymmetric", a, b)
		}
	})
}

func randString(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// BenchmarkCompare compares sibling paths as the merge of a pass does: long
// shared prefixes, equal paths half the time.
func BenchmarkCompare(b *testing.B) {
	paths := []string{
		"mailman/archives/private/list3.mbox/list3.mbox",
		"mailman/archives/private/list3/2024-March/000123.html",
		"mailman/archives/private/list3/2024-March/000124.html",
		"home/user17/Maildir/cur/1700000000.M123P456.host:2,S",
		"home/user17/Maildir/cur/1700000000.M123P457.host:2,S",
		"projects/repo4/_darcs/pristine.hashed/0000001234-abcdef0123456789",
	}
	pairs := make([][2]string, 0, len(paths)*len(paths))
	for _, a := range paths {
		for _, c := range paths {
			pairs = append(pairs, [2]string{a, strings.Clone(c)})
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pairs[i%len(pairs)]
		Compare(p[0], p[1])
	}
}

// A pass holds hundreds of thousands of entries in flight: keep Entry in
// the 144-byte size class (the small fields share a word).
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(Entry{}); n > 144 {
		t.Fatalf("Entry is %d bytes, more than 144", n)
	}
}

// A record larger than the reader's buffer is read by copying, the others
// where they lie in the buffer: both kinds, in one manifest, must come back
// and be covered by the checksum.
func TestRecordsLargerThanTheReadBuffer(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB, over the 64 KiB buffer
	entries := []*Entry{
		{Path: "", Type: TypeDir, Mode: 0o755},
		{Path: "a", Type: TypeFile, Mode: 0o644, Size: 1},
		{Path: "b", Type: TypeFile, Mode: 0o644, Size: 2, Xattrs: []Xattr{{Name: "user.big", Value: big}}},
		{Path: "c", Type: TypeFile, Mode: 0o644, Size: 3},
	}
	for _, wr := range writers {
		data := encodeWith(t, wr.new, entries)
		got, err := decodeAll(data)
		if err != nil {
			t.Fatalf("%s: %v", wr.name, err)
		}
		if len(got) != len(entries) {
			t.Fatalf("%s: read %d entries, want %d", wr.name, len(got), len(entries))
		}
		for i := range entries {
			if !Equal(got[i], entries[i]) {
				t.Fatalf("%s: entry %d = %+v, want %+v", wr.name, i, got[i], entries[i])
			}
		}
		if wr.name != "plain" {
			continue
		}
		// A byte of the big value changed: the checksum of the entries
		// must catch it (the value is copied out of the record, not
		// decoded where it lies).
		bad := bytes.Clone(data)
		i := bytes.Index(bad, big[:64])
		if i < 0 {
			t.Fatal("big value not found in the plain manifest")
		}
		bad[i+100<<10] ^= 1
		if _, err := decodeAll(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a changed byte in a 200 KiB record: err = %v, want ErrCorrupt", err)
		}
		// The same for a record read where it lies: the first byte where
		// the manifest differs from one whose last path is "d" is in the
		// record of "c".
		other := slices.Clone(entries)
		other[3] = &Entry{Path: "d", Type: TypeFile, Mode: 0o644, Size: 3}
		odata := encodeWith(t, wr.new, other)
		j := 0
		for data[j] == odata[j] {
			j++
		}
		bad = bytes.Clone(data)
		bad[j] = odata[j]
		if _, err := decodeAll(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a changed byte in a small record: err = %v, want ErrCorrupt", err)
		}
	}
}

func TestXattrsDiffer(t *testing.T) {
	acl := func(v string) Xattr { return Xattr{Name: ACLAccess, Value: []byte(v)} }
	def := func(v string) Xattr { return Xattr{Name: ACLDefault, Value: []byte(v)} }
	user := func(v string) Xattr { return Xattr{Name: "user.a", Value: []byte(v)} }
	for _, tc := range []struct {
		a, b       []Xattr
		xattr, acl bool
	}{
		{nil, nil, false, false},
		{[]Xattr{acl("1"), def("2"), user("3")}, []Xattr{acl("1"), def("2"), user("3")}, false, false},
		{[]Xattr{acl("1")}, nil, false, true},
		{nil, []Xattr{def("1")}, false, true},
		{[]Xattr{acl("1"), user("3")}, []Xattr{acl("2"), user("3")}, false, true},
		{[]Xattr{acl("1"), user("3")}, []Xattr{acl("1"), user("4")}, true, false},
		{[]Xattr{user("3")}, []Xattr{acl("1")}, true, true},
		{[]Xattr{{Name: "trusted.x"}}, []Xattr{{Name: "user.x"}}, true, false},
	} {
		x, a := XattrsDiffer(tc.a, tc.b)
		if x != tc.xattr || a != tc.acl {
			t.Errorf("XattrsDiffer(%v, %v) = %v, %v; want %v, %v", tc.a, tc.b, x, a, tc.xattr, tc.acl)
		}
		if x2, a2 := XattrsDiffer(tc.b, tc.a); x2 != x || a2 != a {
			t.Errorf("XattrsDiffer is not symmetric on %v, %v", tc.a, tc.b)
		}
		if XattrsEqual(tc.a, tc.b) != (!x && !a) {
			t.Errorf("XattrsEqual disagrees on %v, %v", tc.a, tc.b)
		}
	}
}
