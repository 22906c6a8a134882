package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
	"golang.org/x/sys/unix"
)

// A local copy looks at the source file only after reading it, and
// compares it with the scan (send.AsScanned). Whatever happened to the file
// between the scan and the open, the copy is never of something else than
// what the manifests say: the file as it is now, or a problem.
func TestCopyOfFileNotAsScanned(t *testing.T) {
	const orig = "the content the scan saw\n"
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, p string)
		want   string // the copy's content; "" when none must be made
		errHas string // the problem reported when there is no copy
	}{
		{"unchanged", func(*testing.T, string) {}, orig, ""},
		{"appended", func(t *testing.T, p string) { appendFile(t, p, "new mail\n") }, orig + "new mail\n", ""},
		{"truncated", func(t *testing.T, p string) { must(t, os.Truncate(p, 4)) }, orig[:4], ""},
		{"same size and mtime, other bytes", func(t *testing.T, p string) {
			fi, err := os.Stat(p)
			must(t, err)
			must(t, os.WriteFile(p, []byte(strings.ToUpper(orig)), 0o644))
			must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
		}, strings.ToUpper(orig), ""},
		{"replaced by rename", func(t *testing.T, p string) {
			must(t, os.WriteFile(p+".new", []byte("replaced\n"), 0o644))
			must(t, os.Rename(p+".new", p))
		}, "replaced\n", ""},
		{"now a directory", func(t *testing.T, p string) {
			must(t, os.Remove(p))
			must(t, os.Mkdir(p, 0o755))
		}, "", "no longer a regular file"},
		{"now a fifo", func(t *testing.T, p string) {
			must(t, os.Remove(p))
			must(t, unix.Mkfifo(p, 0o644))
		}, "", "no longer a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst, st := t.TempDir(), filepath.Join(t.TempDir(), "dst"), t.TempDir()
			p := filepath.Join(src, "mbox")
			must(t, os.WriteFile(p, []byte(orig), 0o644))
			must(t, os.WriteFile(filepath.Join(src, "other"), []byte("other"), 0o644))
			opens, reads := 0, 0
			send.TestHooks.BeforeOpen = func(rel string) {
				if rel == "mbox" {
					if opens++; opens == 1 {
						tc.change(t, p)
					}
				}
			}
			send.TestHooks.AfterRead = func(rel string) {
				if rel == "mbox" {
					reads++
				}
			}
			defer func() { send.TestHooks.BeforeOpen, send.TestHooks.AfterRead = nil, nil }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a fifo must not block the open
			defer cancel()
			res, err := Run(ctx, Options{Kind: Initial, Src: src, Dst: dst, StateDir: st, Source: &tree.Local{Root: src}})
			if err != nil {
				t.Fatal(err)
			}
			got, rerr := os.ReadFile(filepath.Join(dst, "mbox"))
			if tc.want == "" {
				if rerr == nil {
					t.Fatalf("a copy was made: %q", got)
				}
				if len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Err, tc.errHas) {
					t.Fatalf("problems %+v, want one saying %q", res.Problems, tc.errHas)
				}
				return
			}
			if rerr != nil || string(got) != tc.want {
				t.Fatalf("copy %q, %v; want %q", got, rerr, tc.want)
			}
			if len(res.Problems) != 0 {
				t.Fatalf("problems: %+v", res.Problems)
			}
			// One read when nothing changed; else the careful one too.
			if wantReads := map[bool]int{true: 1, false: 2}[tc.name == "unchanged"]; reads != wantReads {
				t.Errorf("read %d times, want %d", reads, wantReads)
			}
			for _, m := range []string{"src.manifest", "dst.manifest"} {
				for _, e := range readManifest(t, filepath.Join(st, m)) {
					if e.Path != "mbox" {
						continue
					}
					if !e.HasHash || e.Hash != xxhash.Sum64String(tc.want) || e.Size != int64(len(tc.want)) {
						t.Errorf("%s: size %d hash %x (%v), want the copy's %d %x", m, e.Size, e.Hash, e.HasHash, len(tc.want), xxhash.Sum64String(tc.want))
					}
				}
			}
		})
	}
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
