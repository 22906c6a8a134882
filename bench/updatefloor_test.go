package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// UpdateFloor replaces what changed, makes what is new, sets metadata that
// alone changed, removes what src no longer has, and leaves the rest.
func TestUpdateFloorBringsDstUpToDate(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "dst")
	write := func(name, data string) {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"same", "grows", "shrinks", "touched", "mode", "gone", "becomes-dir", "old/a", "old/deep/b", "keep/x"} {
		write(name, "content of "+name)
	}
	os.Symlink("one", filepath.Join(src, "link"))
	os.Symlink("same", filepath.Join(src, "samelink"))
	if _, err := CopyFloor(context.Background(), 2, src, dst, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	f, _ := os.OpenFile(filepath.Join(src, "grows"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(strings.Repeat("more mail\n", 150000)) // over fsx.DirectMin
	f.Close()
	write("shrinks", "short")
	os.Chtimes(filepath.Join(src, "shrinks"), later, later)
	os.Chtimes(filepath.Join(src, "touched"), later, later) // same size, new mtime
	os.Chmod(filepath.Join(src, "mode"), 0o600)
	os.Remove(filepath.Join(src, "gone"))
	os.RemoveAll(filepath.Join(src, "old"))
	os.Remove(filepath.Join(src, "becomes-dir"))
	write("becomes-dir/inside", "now a directory")
	write("new/sub/file", "new")
	os.Remove(filepath.Join(src, "link"))
	os.Symlink("two", filepath.Join(src, "link"))
	os.Chtimes(filepath.Join(src, "keep"), later, later)

	// A link to the old copy, outside dst, sees whether it was rewritten in
	// place or replaced whole (as rsync does it).
	oldCopy := filepath.Join(t.TempDir(), "grows-before")
	if err := os.Link(filepath.Join(dst, "grows"), oldCopy); err != nil {
		t.Fatal(err)
	}

	got, err := UpdateFloor(context.Background(), 3, src, dst, true)
	if err != nil {
		t.Fatal(err)
	}
	sameTrees(t, src, dst)
	if b, err := os.ReadFile(oldCopy); err != nil || string(b) != "content of grows" {
		t.Errorf("the old copy of grows was changed in place (%d bytes, %v): want it replaced by a rename", len(b), err)
	}
	// Written: grows, shrinks, touched, becomes-dir/inside, new/sub/file.
	// Made: becomes-dir, new, new/sub, link. Metadata only: mode.
	// Deleted: gone, old (once), becomes-dir the file, link is replaced.
	want := UpdateStats{Copied: 5, Created: 4, Meta: 1, Deleted: 3,
		Bytes: int64(len("content of grows") + 1500000 + len("short") + len("content of touched") + len("now a directory") + len("new"))}
	if got.Time <= 0 || got.Sync <= 0 || got.Entries == 0 {
		t.Errorf("time %v, sync %v, entries %d", got.Time, got.Sync, got.Entries)
	}
	got.Time, got.Sync, got.Entries = 0, 0, 0
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// Up to date: a second pass only looks.
	got, err = UpdateFloor(context.Background(), 1, src, dst, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Copied+got.Created+got.Meta+got.Deleted != 0 || got.Sync != 0 {
		t.Errorf("second pass changed something: %+v", got)
	}
}

func TestUpdateFloorErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := UpdateFloor(context.Background(), 2, dir, missing, false); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing destination: err = %v, want one naming %s", err, missing)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := UpdateFloor(context.Background(), 2, file, dir, false); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file source: err = %v", err)
	}
}
