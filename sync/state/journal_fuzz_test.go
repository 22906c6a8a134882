package state

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/msync/msync/manifest"
)

// FuzzJournal feeds the journal reader whatever a killed or damaged pass
// could leave on disk: it must return valid, strictly ordered paths of
// valid types, then io.EOF or an error, never panic nor loop.
func FuzzJournal(f *testing.F) {
	rec := func(t manifest.Type, p string) string { return string([]byte{byte(t)}) + p + "\x00" }
	f.Add([]byte(journalMagic + rec(manifest.TypeDir, "a") + rec(manifest.TypeFile, "a/b") + rec(manifest.TypeSymlink, "c")))
	f.Add([]byte(journalMagic + rec(manifest.TypeFile, "b") + rec(manifest.TypeFile, "a")))
	f.Add([]byte(journalMagic + rec(manifest.TypeFile, "../x") + rec(manifest.TypeFile, "/abs")))
	f.Add([]byte(journalMagic + rec(manifest.TypeFile, "torn")[:5]))
	f.Add([]byte(journalMagic[:7]))
	f.Add([]byte("not a journal at all\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "journal")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := OpenJournal(p)
		if err != nil {
			return
		}
		defer j.Close()
		last := ""
		for n := 0; ; n++ {
			if n > len(data) {
				t.Fatalf("more records (%d) than bytes (%d)", n, len(data))
			}
			e, err := j.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				return
			}
			if manifest.ValidPath(e.Path) != nil || !e.Type.Valid() {
				t.Fatalf("invalid record %q type %d", e.Path, e.Type)
			}
			if n > 0 && manifest.Compare(last, e.Path) >= 0 {
				t.Fatalf("%q after %q: out of order", e.Path, last)
			}
			last = e.Path
		}
	})
}
