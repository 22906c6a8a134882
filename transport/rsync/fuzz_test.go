package rsync

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/msync/msync/manifest"
)

// flistBytes encodes entries the way a protocol 27 sender does (no name
// compression), for the fuzzer's seeds.
func flistBytes(entries ...[2]string) []byte {
	var b bytes.Buffer
	le := func(v int32) { binary.Write(&b, binary.LittleEndian, v) }
	for _, e := range entries {
		name, kind := e[0], e[1]
		b.WriteByte(xmitLongName)
		le(int32(len(name)))
		b.WriteString(name)
		le(5)          // length
		le(1700000000) // mtime
		switch kind {
		case "dir":
			le(sIFDIR | 0o755)
		case "link":
			le(sIFLNK | 0o777)
		default:
			le(sIFREG | 0o644)
		}
		le(0) // uid
		le(0) // gid
		switch kind {
		case "link":
			le(3)
			b.WriteString("abc")
		case "file":
			le(1) // dev
			le(2) // inode
		}
	}
	b.WriteByte(0)
	le(0) // I/O error flag
	return b.Bytes()
}

// FuzzFileList feeds arbitrary bytes to the file-list decoder: it must
// never panic, and every name it accepts stays inside the tree.
func FuzzFileList(f *testing.F) {
	f.Add(flistBytes([2]string{".", "dir"}, [2]string{"a", "file"}, [2]string{"l", "link"}))
	f.Add(flistBytes([2]string{".", "dir"}, [2]string{"../x", "file"}))
	f.Add(flistBytes([2]string{"/etc", "dir"}))
	f.Add([]byte{xmitSameName | xmitLongName, 200, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		fl, _, err := readFileList(&decoder{r: bufio.NewReader(bytes.NewReader(data))}, allFields, nil)
		if err != nil {
			return
		}
		for _, e := range fl.entries {
			if strings.HasPrefix(e.Path, "/") || e.Path == ".." || strings.HasPrefix(e.Path, "../") ||
				strings.Contains(e.Path, "/../") || strings.HasSuffix(e.Path, "/..") {
				t.Fatalf("accepted %q", e.Path)
			}
		}
	})
}

func TestFileListSeeds(t *testing.T) {
	fl, _, err := readFileList(&decoder{r: bufio.NewReader(bytes.NewReader(flistBytes([2]string{".", "dir"}, [2]string{"a", "file"}, [2]string{"l", "link"})))}, allFields, nil)
	if err != nil || len(fl.entries) != 3 || fl.entries[2].LinkTarget != "abc" || fl.index["a"] != 1 {
		t.Fatalf("%+v %v", fl, err)
	}
	for _, bad := range [][]byte{
		flistBytes([2]string{".", "dir"}, [2]string{"../x", "file"}),
		flistBytes([2]string{"/etc", "dir"}),
		flistBytes([2]string{"a", "file"}), // no top directory
	} {
		if _, _, err := readFileList(&decoder{r: bufio.NewReader(bytes.NewReader(bad))}, allFields, nil); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// rsync keeps the first of entries with the same name (in the sender's
// order) and drops the others, which still take their index slot; names
// that only match once cleaned count as the same name.
func TestFileListDuplicates(t *testing.T) {
	for _, c := range []struct {
		list  [][2]string
		index map[string]int32
	}{
		{[][2]string{{".", "dir"}, {"b", "file"}, {"a", "file"}, {"a", "file"}}, map[string]int32{"a": 1, "b": 3}},
		{[][2]string{{".", "dir"}, {"d", "file"}, {"a", "file"}, {"./d", "file"}, {"a", "file"}, {"b", "file"}},
			map[string]int32{"d": 1, "a": 2, "b": 4}},
	} {
		fl, _, err := readFileList(&decoder{r: bufio.NewReader(bytes.NewReader(flistBytes(c.list...)))}, allFields, nil)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, e := range fl.entries {
			paths = append(paths, e.Path)
		}
		if want := len(c.index) + 1; len(fl.entries) != want || !slices.IsSortedFunc(paths, manifest.Compare) {
			t.Errorf("%v: entries %q, want %d sorted", c.list, paths, want)
		}
		if !maps.Equal(fl.index, c.index) {
			t.Errorf("%v: index %v, want %v", c.list, fl.index, c.index)
		}
	}
}

// BenchmarkReadFileList decodes and orders a list of 14k entries (a scale
// 0.1 tree) in the sender's walk order.
func BenchmarkReadFileList(b *testing.B) {
	list := [][2]string{{".", "dir"}}
	for d := range 300 {
		dir := fmt.Sprintf("home/user%03d/Maildir/cur", d)
		list = append(list, [2]string{dir, "dir"})
		for f := range 47 {
			list = append(list, [2]string{fmt.Sprintf("%s/1200%06d.M%dP0.oldhost:2,S", dir, d*100+f, f), "file"})
		}
	}
	data := flistBytes(list...)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := readFileList(&decoder{r: bufio.NewReader(bytes.NewReader(data))}, allFields, nil); err != nil {
			b.Fatal(err)
		}
	}
}
