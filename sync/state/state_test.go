package state

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/record"
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
		if err := d.AppendPass(&record.Pass{Kind: "catchup", End: end.Add(time.Duration(i) * time.Hour), OK: true}); err != nil {
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

// A manifest's next version is written under a temp name in the state
// directory itself, even when $TMPDIR is on the same file system (where
// renameio would otherwise put it), and the temp files that killed passes
// left there are removed when the next pass takes the lock: nothing else.
func TestManifestTempsStayInTheStateDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	sd := filepath.Join(t.TempDir(), "st")
	d, err := Open(sd)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := d.PendingFile(Dest)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Cleanup()
	if _, err := pf.Write([]byte("half a manifest")); err != nil {
		t.Fatal(err)
	}
	if err := WriteVerify(sd, &record.Verify{}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("$TMPDIR holds %v", ents)
	}
	names := func() []string {
		ents, err := os.ReadDir(sd)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	var temp string
	for _, n := range names() {
		if isStaleTemp(n) {
			temp = n
		}
	}
	if temp == "" || filepath.Join(sd, temp) != pf.Name() {
		t.Fatalf("no temp manifest in the state directory: %v (pending file %s)", names(), pf.Name())
	}
	// The pass is killed: its temp stays. Other files of the directory,
	// and names that only look alike, must survive the next Open.
	d.Close()
	keep := []string{".dst.manifest", ".dst.manifestx", ".dst.manifest1x", "dst.manifest", "src.manifest.pending", ".src.manifest.interrupted.1", ".verify.json123"}
	for _, n := range append([]string{".src.manifest0123456789", SpillPrefix + "123"}, keep...) {
		if err := os.WriteFile(filepath.Join(sd, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err = Open(sd)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := names()
	want := append([]string{"lock", "verify.json"}, keep...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after Open: %v, want %v", got, want)
	}
}
