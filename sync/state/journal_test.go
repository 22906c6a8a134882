package state

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/msync/msync/manifest"
)

func readJournal(t *testing.T, path string) []string {
	t.Helper()
	r, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	es, err := manifest.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, string(rune('0'+e.Type))+e.Path)
	}
	return out
}

// Intents are in the file once Ensure returned, however many were added;
// a torn tail reads as the records before it; the journal a killed pass
// left is taken aside by the next and removed when that one settles.
func TestJournal(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	j := d.NewJournal(true)
	if _, err := os.Stat(d.JournalPath()); !os.IsNotExist(err) {
		t.Fatalf("a journal with nothing to ensure exists: %v", err)
	}
	a := j.Add("a", manifest.TypeDir)
	b := j.Add("a/f", manifest.TypeFile)
	if err := j.Ensure(a); err != nil {
		t.Fatal(err)
	}
	// b was written with a: no second write for it.
	j.Add("b", manifest.TypeSymlink) // added, never ensured: not in the file
	if got := readJournal(t, d.JournalPath()); !slices.Equal(got, []string{"2a", "1a/f"}) {
		t.Fatalf("journal = %q", got)
	}
	if err := j.Ensure(b); err != nil {
		t.Fatal(err)
	}
	if err := j.Ensure(3); err != nil {
		t.Fatal(err)
	}
	j.Close()

	// A torn last record (no NUL) is ignored.
	f, _ := os.OpenFile(d.JournalPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{byte(manifest.TypeFile), 'c', '/', 'x'})
	f.Close()
	if got := readJournal(t, d.JournalPath()); !slices.Equal(got, []string{"2a", "1a/f", "3b"}) {
		t.Fatalf("journal with a torn tail = %q", got)
	}

	// Out of order is refused when added.
	j2 := d.NewJournal(false)
	j2.Add("z", manifest.TypeFile)
	if err := j2.Ensure(j2.Add("a", manifest.TypeFile)); err == nil {
		t.Fatal("an intent out of order was accepted")
	}

	taken, err := d.TakeJournals()
	if err != nil || len(taken) != 1 {
		t.Fatalf("TakeJournals = %q, %v", taken, err)
	}
	if got := readJournal(t, taken[0]); len(got) != 3 {
		t.Fatalf("taken journal = %q", got)
	}
	if err := d.SettleInterrupted(append(taken, d.JournalPath())); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(d.JournalPath() + "*"); len(left) != 0 {
		t.Fatalf("left after settling: %q", left)
	}

	// A journal killed before its header reads as empty.
	empty := filepath.Join(d.Path, "journal.interrupted.1")
	os.WriteFile(empty, []byte("msync-jo"), 0o600)
	if got := readJournal(t, empty); len(got) != 0 {
		t.Fatalf("headless journal = %q", got)
	}
}
