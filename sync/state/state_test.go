package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistoryToleratesATornLastLine(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	end := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for i := range 3 {
		if err := d.AppendPass(&Pass{Kind: "catchup", End: end.Add(time.Duration(i) * time.Hour), OK: true}); err != nil {
			t.Fatal(err)
		}
	}
	// A pass killed while appending leaves half a line.
	f, _ := os.OpenFile(filepath.Join(dir, "passes.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"kind":"catchup","st`)
	f.Close()
	ps, err := Passes(dir)
	if err != nil || len(ps) != 3 {
		t.Fatalf("passes = %d, %v", len(ps), err)
	}
	last, _ := LastPassEnd(dir)
	if !last.Equal(end.Add(2 * time.Hour)) {
		t.Errorf("last pass end %v", last)
	}
	// A malformed complete line is an error naming the file and line.
	os.WriteFile(filepath.Join(dir, "passes.jsonl"), []byte("{}\nnot json\n"), 0o600)
	if _, err := Passes(dir); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed history: %v", err)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	a.Close()
	b, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	b.Close()
}

func TestDefaultDirIsStablePerPair(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/x")
	a, _ := DefaultDir("/srv/old", "/mnt/new")
	b, _ := DefaultDir("/srv/old", "/mnt/new")
	c, _ := DefaultDir("/srv/old", "/mnt/other")
	if a != b || a == c || !strings.HasPrefix(a, "/x/msync/old-to-new-") {
		t.Errorf("DefaultDir: %q %q %q", a, b, c)
	}
}
