package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/sync/state"
)

// estimateJSON is the part of `msync estimate --json` this test reads.
type estimateJSON struct {
	Datasets []struct {
		Files   float64 `json:"expected_changed_paths"`
		Seconds float64 `json:"seconds"`
		Low     float64 `json:"low_seconds"`
		High    float64 `json:"high_seconds"`
		Probe   *struct {
			Entries   int64 `json:"entries_scanned"`
			CopyBytes int64 `json:"copy_bytes"`
			New       struct{ Paths, Bytes int64 }
			Changed   struct{ Paths, Bytes int64 }
			Deleted   struct{ Paths, Bytes int64 }
			Meta      struct{ Paths int64 } `json:"metadata_only"`
		} `json:"probe"`
	} `json:"datasets"`
}

func estimateOut(t *testing.T, args ...string) estimateJSON {
	t.Helper()
	code, out, errs := msync(append([]string{"estimate", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("msync estimate %v: exit %d: %s", args, code, errs)
	}
	var e estimateJSON
	if err := json.Unmarshal([]byte(out), &e); err != nil || len(e.Datasets) != 1 {
		t.Fatalf("estimate --json: %v: %s", err, out)
	}
	return e
}

// TestProbeCatchesBurst: catch-ups that found nothing, then a burst of
// change just before the final pass. History alone predicts a quiet final
// pass; the probe counts the burst exactly (against what the real
// `catchup --final` then does) and so predicts more than history alone.
// How close its time comes is measured by `msync bench estimate-check
// --scenarios`, not here: a timed assertion in a test fails on a loaded
// machine, not on a wrong estimate.
func TestProbeCatchesBurst(t *testing.T) {
	probeBurst(t, t.TempDir())
}

// probeBurst runs the scenario in d.
func probeBurst(t *testing.T, d string) {
	t.Helper()
	src, dst, sd := filepath.Join(d, "src"), filepath.Join(d, "dst"), filepath.Join(d, "state")
	block := strings.Repeat("0123456789abcdef", 256) // 4 KiB
	for i := range 3000 {
		write(t, filepath.Join(src, fmt.Sprintf("d%02d/f%04d", i%15, i)), block, 0o644)
	}
	// Written back before each pass, as on a server whose changes came
	// over time: the passes then time the copy, not the test's writes.
	syscall.Sync()
	for _, args := range [][]string{{"initial"}, {"catchup"}, {"catchup"}, {"catchup"}} {
		if code, _, errs := msync(append(args, src, dst, "--state", sd, "--fsync", "none")...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
	}
	// The burst: 2400 new files, 100 rewritten, 50 deleted.
	for i := range 2400 {
		write(t, filepath.Join(src, fmt.Sprintf("n%02d/g%04d", i%12, i)), block, 0o644)
	}
	for i := range 100 {
		write(t, filepath.Join(src, fmt.Sprintf("d%02d/f%04d", i%15, i)), block+"x", 0o644)
	}
	for i := 1000; i < 1050; i++ {
		must(t, os.Remove(filepath.Join(src, fmt.Sprintf("d%02d/f%04d", i%15, i))))
	}
	syscall.Sync()
	passes, _ := state.Passes(sd)

	hist := estimateOut(t, "--state", sd)
	probe := estimateOut(t, "--probe", "--state", sd)
	after, _ := state.Passes(sd)
	if len(after) != len(passes) {
		t.Fatalf("the probe recorded a pass: %d -> %d", len(passes), len(after))
	}
	if _, err := os.Stat(filepath.Join(dst, "n00")); err == nil {
		t.Fatal("the probe wrote at DST")
	}

	if code, _, errs := msync("catchup", "--final", src, dst, "--state", sd, "--fsync", "none"); code != 0 {
		t.Fatalf("catchup --final: exit %d: %s", code, errs)
	}
	ps, err := state.Passes(sd)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		t.Logf("%s pass: %d changed, %d bytes in %v", p.Kind, p.Changed(), p.Stats.DataBytes, p.Duration)
	}
	final := ps[len(ps)-1]
	actual := final.Duration.Seconds()

	// Counts, exactly.
	pb := probe.Datasets[0].Probe
	if pb == nil {
		t.Fatal("no probe in --json")
	}
	s := final.Stats
	if pb.New.Paths != s.Created || pb.Changed.Paths != s.Updated || pb.Deleted.Paths != s.Deleted || pb.Meta.Paths != s.MetaOnly ||
		pb.CopyBytes != s.DataBytes || pb.Entries != s.Entries {
		t.Errorf("probe %+v\nfinal pass %+v", *pb, s)
	}
	if want := 12 + 2400; pb.New.Paths != int64(want) || pb.Changed.Paths != 100 || pb.Deleted.Paths != 50 {
		t.Errorf("probe counted %d new, %d changed, %d deleted; want %d, 100, 50", pb.New.Paths, pb.Changed.Paths, pb.Deleted.Paths, want)
	}

	// History alone misses the burst; the probe's prediction carries it.
	h, p := hist.Datasets[0], probe.Datasets[0]
	t.Logf("final pass took %.3f s; history alone predicted %.3f s (%.0f paths); probe %.3f s (%.3f - %.3f)",
		actual, h.Seconds, h.Files, p.Seconds, p.Low, p.High)
	if h.Files > 100 {
		t.Errorf("history alone predicted %.0f paths: it should miss the burst of %d", h.Files, pb.New.Paths+pb.Changed.Paths+pb.Deleted.Paths)
	}
	if p.Seconds <= h.Seconds || p.High < p.Seconds || p.Low > p.Seconds {
		t.Errorf("probe predicted %.3f s (%.3f - %.3f), history alone %.3f s: the probe's prediction must carry the burst, inside its own range",
			p.Seconds, p.Low, p.High, h.Seconds)
	}
}

// The probe reaches a remote source over the pass's connection (msync over
// ssh, the msync daemon, stock rsync's daemon and rsync over ssh) and a
// local one pushed to stock rsync (whose state stays here); it counts what
// the next pass then changes, and leaves the state directory (the remote
// scan's cache among it) as it was.
func TestProbeRemote(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	cases := []struct {
		name string
		ends func(t *testing.T, base string) (from, to string, flags []string)
	}{
		{"ssh-pull", func(t *testing.T, base string) (string, string, []string) {
			return "127.0.0.1:" + base + "/src", base + "/dst", needSSHD(t)
		}},
		{"daemon-pull", func(t *testing.T, base string) (string, string, []string) {
			return daemonURL(t, "tmp", base+"/src"), base + "/dst", nil
		}},
		{"rsync-daemon-pull", func(t *testing.T, base string) (string, string, []string) {
			port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base, ReadOnly: true})
			return fmt.Sprintf("rsync://127.0.0.1:%d/data/src", port), base + "/dst", nil
		}},
		{"rsync-ssh-pull", func(t *testing.T, base string) (string, string, []string) {
			return "127.0.0.1:" + base + "/src", base + "/dst", append(needSSHD(t)[:2], "--rsync", "--rsync-path", bin.Path)
		}},
		{"rsync-daemon-push", func(t *testing.T, base string) (string, string, []string) {
			must(t, os.Mkdir(base+"/dst", 0o755))
			port := rsynctest.StartDaemon(t, bin.Path, rsynctest.Module{Name: "data", Path: base})
			return base + "/src", fmt.Sprintf("rsync://127.0.0.1:%d/data/dst", port), nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			st := base + "/state"
			for i := range 20 {
				write(t, fmt.Sprintf("%s/src/d%d/f%d", base, i%3, i), strings.Repeat("x", 100*i), 0o644)
			}
			from, to, flags := c.ends(t, base)
			for _, kind := range []string{"initial", "catchup", "catchup"} {
				if code, _, errs := msync(append([]string{kind, from, to, "--state", st}, flags...)...); code != 0 {
					t.Fatalf("%s: exit %d: %s", kind, code, errs)
				}
			}
			write(t, base+"/src/d0/new1", "new", 0o644)
			write(t, base+"/src/new2", "new2", 0o644)
			write(t, base+"/src/d1/f1", "rewritten, longer", 0o644)
			snap := func() map[string]string {
				out := map[string]string{}
				es, _ := os.ReadDir(st)
				for _, e := range es {
					b, _ := os.ReadFile(filepath.Join(st, e.Name()))
					fi, _ := e.Info()
					out[e.Name()] = fmt.Sprint(fi.ModTime(), fi.Size(), string(b))
				}
				return out
			}
			before := snap()
			code, out, errs := msync(append([]string{"estimate", "--probe", "--json", "--state", st}, flags...)...)
			if code != 0 {
				t.Fatalf("estimate --probe: exit %d: %s\n%s", code, errs, out)
			}
			var e estimateJSON
			must(t, json.Unmarshal([]byte(out), &e))
			pb := e.Datasets[0].Probe
			after := snap()
			if len(after) != len(before) {
				t.Errorf("state directory changed: %d -> %d files", len(before), len(after))
			}
			for k, v := range before {
				if after[k] != v {
					t.Errorf("the probe changed %s in the state directory", k)
				}
			}
			if code, _, errs := msync(append([]string{"catchup", from, to, "--state", st}, flags...)...); code != 0 {
				t.Fatalf("catchup: exit %d: %s", code, errs)
			}
			ps, err := state.Passes(st)
			must(t, err)
			s := ps[len(ps)-1].Stats
			// A push to stock rsync does not count the directories whose
			// mtime it sets as metadata changes.
			meta := s.MetaOnly
			if strings.HasSuffix(c.name, "push") {
				meta = 2
			}
			if pb == nil || pb.New.Paths != 2 || pb.Changed.Paths != 1 || pb.New.Paths != s.Created || pb.Changed.Paths != s.Updated ||
				pb.Meta.Paths != meta || pb.CopyBytes != s.DataBytes {
				t.Errorf("probe %+v\npass %+v", pb, s)
			}
		})
	}
}
