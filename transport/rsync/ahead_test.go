package rsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msync/msync/internal/rsynctest"
	"github.com/msync/msync/sync/engine"
)

// A new file is requested when it is dispatched, a changed one only once a
// worker has signed the old copy: stock rsync then answers the new files
// first. A large answer nobody reads yet must not stop the connection's
// reader, or the workers waiting for the changed files behind it wait
// forever. The hang depends on timing, so each shape runs several times.
func TestPullAheadRepliesDoNotBlockEarlierRequests(t *testing.T) {
	bin := rsynctest.Binaries(t)[0]
	for _, tc := range []struct {
		name             string
		workers, changed int
		added            int
	}{
		{"one worker", 1, 1, 1},
		{"more large new files than workers", 2, 2, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for run := range 4 {
				pullChangedThenNew(t, bin.Path, tc.workers, tc.changed, tc.added, run)
			}
		})
	}
}

// pullChangedThenNew pulls a tree of changed large files, then new large
// files sorted after them, from a stock daemon, and fails when the catchup
// does not end within its deadline.
func pullChangedThenNew(t *testing.T, bin string, workers, changed, added, run int) {
	t.Helper()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	rng := rand.New(rand.NewPCG(uint64(run), 7))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for i := range changed {
		writeFile(t, filepath.Join(src, fmt.Sprintf("b%d", i)), string(random(3_000_000)))
	}
	port := rsynctest.StartDaemon(t, bin, rsynctest.Module{Name: "m", Path: base, ReadOnly: true})
	ep := Endpoint{Daemon: true, Host: "127.0.0.1", Port: port, Module: "m", Path: "src", Name: fmt.Sprintf("rsync://127.0.0.1:%d/m/src", port)}
	dst, sd := filepath.Join(base, "dst"), filepath.Join(base, "state")
	pull := func(kind engine.Kind) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var log bytes.Buffer
		c, err := Dial(ctx, ep, Options{Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		res, err := engine.Run(ctx, engine.Options{Kind: kind, Src: ep.Name, Dst: dst, StateDir: sd, Source: c,
			Workers: workers, Log: io.Discard})
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("run %d: %s pull with %d workers hung until its deadline (the connection's reader waits on an answer nobody reads): %v\n%s",
				run, kind, workers, err, log.String())
		}
		if err != nil {
			t.Fatalf("run %d: %s pull: %v\n%s", run, kind, err, log.String())
		}
		if !res.Committed || res.Stats.Failed != 0 {
			t.Fatalf("run %d: %s pull: %+v", run, kind, res)
		}
	}
	pull(engine.Initial)
	for i := range changed {
		p := filepath.Join(src, fmt.Sprintf("b%d", i))
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{'x'}, 100); err != nil {
			t.Fatal(err)
		}
		f.Close()
		// A second later, so that the scan sees the change by mtime.
		mt := time.Now().Add(time.Duration(2+run) * time.Second)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	for i := range added {
		writeFile(t, filepath.Join(src, fmt.Sprintf("c%d", i)), string(random(2_000_000)))
	}
	pull(engine.Catchup)
	for _, name := range []string{"b0", "c0"} {
		want, _ := os.ReadFile(filepath.Join(src, name))
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("run %d: %s differs after the catchup (%v)", run, name, err)
		}
	}
}
