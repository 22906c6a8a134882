package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// coldStart drops the caches once before each timed command and only with
// DropCaches; a failed drop stops the run, and so does a tree that cannot
// be read back, named in the error.
func TestColdStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, d := range []string{src, dst} {
		if err := os.MkdirAll(filepath.Join(d, "a"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "a", "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	drops := 0
	c := &Config{drop: func() error { drops++; return nil }}
	if err := c.coldStart(ctx, reads(src).and(dst)); err != nil || drops != 0 {
		t.Fatalf("without DropCaches: err %v, %d drops; want nil, 0", err, drops)
	}

	c.DropCaches = true
	for i, tr := range []trees{reads(src), walks(src, dst), reads(src).and(dst), {}} {
		if err := c.coldStart(ctx, tr); err != nil {
			t.Fatalf("coldStart(%+v): %v", tr, err)
		}
		if drops != i+1 {
			t.Fatalf("after %d cold starts: %d drops", i+1, drops)
		}
	}

	missing := filepath.Join(dir, "missing")
	for _, tr := range []trees{reads(src, missing), walks(missing)} {
		err := c.coldStart(ctx, tr)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("coldStart(%+v) = %v, want an error naming %s", tr, err, missing)
		}
	}

	refused := errors.New("refused")
	c.drop = func() error { return refused }
	if err := c.coldStart(ctx, reads(missing)); !errors.Is(err, refused) {
		t.Errorf("coldStart with a failing drop = %v, want that error (before reading anything back)", err)
	}
}

// and never writes into the trees value it was called on: two commands'
// trees built from one base stay apart.
func TestTreesAnd(t *testing.T) {
	base := walks("a")
	base.walk = append(make([]string, 0, 4), base.walk...) // room to alias
	x, y := base.and("x"), base.and("y")
	if strings.Join(x.walk, ",") != "a,x" || strings.Join(y.walk, ",") != "a,y" || len(base.walk) != 1 {
		t.Errorf("base %v, x %v, y %v: want [a], [a x], [a y]", base.walk, x.walk, y.walk)
	}
}

// programFiles finds a program's executable and, through ldd, its shared
// libraries; a missing program adds nothing. coldStart reads them all back
// and names one it cannot read.
func TestProgramFiles(t *testing.T) {
	files := programFiles("sh", "no-such-program-for-msync", "sh")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(files, sh) {
		t.Fatalf("programFiles(sh) = %v, want %s in it", files, sh)
	}
	if _, err := exec.LookPath("ldd"); err == nil {
		if !slices.ContainsFunc(files, func(f string) bool { return strings.Contains(filepath.Base(f), "libc.so") }) {
			t.Errorf("programFiles(sh) = %v, want libc from ldd", files)
		}
	}
	if !slices.IsSorted(files) || len(slices.Compact(slices.Clone(files))) != len(files) {
		t.Errorf("programFiles = %v: want each file once, sorted", files)
	}
	c := &Config{DropCaches: true, drop: func() error { return nil }, programs: files}
	if err := c.coldStart(context.Background(), trees{}); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	c.programs = append(c.programs, missing)
	if err := c.coldStart(context.Background(), trees{}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("coldStart with a missing program file = %v, want an error naming it", err)
	}
}
