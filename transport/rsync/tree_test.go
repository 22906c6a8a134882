package rsync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/msync/msync/record"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/tree"
)

// listClient is the receiving end of a stock client's push whose file
// list (and I/O error flag) is list.
func listClient(list []byte, ioError int32) *Client {
	binary.LittleEndian.PutUint32(list[len(list)-4:], uint32(ioError))
	return &Client{name: "rsync-test", log: io.Discard, phase: make(chan struct{}, 4), finished: make(chan struct{}),
		kick: make(chan struct{}, 1), server: true, dec: &decoder{r: bufio.NewReader(bytes.NewReader(list))},
		enc: &encoder{w: bufio.NewWriter(io.Discard)}, closer: func() error { return nil }, fields: allFields}
}

// runList runs a pass of kind from such a list into a fresh destination.
func runList(t *testing.T, kind engine.Kind, list []byte, ioError int32) (*record.Result, error) {
	t.Helper()
	dir := t.TempDir()
	c := listClient(list, ioError)
	defer c.broken(errors.New("test over"))
	return engine.Run(context.Background(), engine.Options{Kind: kind, Src: c.name, Dst: filepath.Join(dir, "dst"),
		StateDir: filepath.Join(dir, "state"), Source: c, Delta: engine.DeltaNever, Log: io.Discard})
}

// A file list must form a tree, with the rule msync's own protocol
// applies (manifest.TreeCheck): an entry beneath a symlink, beneath a
// file, or without its directory refuses the list as a protocol error,
// in an initial pass and a catch-up alike.
func TestFileListMustBeATree(t *testing.T) {
	for name, list := range map[string][][2]string{
		"beneath a symlink": {{".", "dir"}, {"l", "link"}, {"l/x", "file"}},
		"beneath a file":    {{".", "dir"}, {"f", "file"}, {"f/y", "file"}},
		"no directory":      {{".", "dir"}, {"d/z", "file"}},
	} {
		for _, kind := range []engine.Kind{engine.Initial, engine.Catchup} {
			_, err := runList(t, kind, flistBytes(list...), 0)
			if !errors.Is(err, ErrProtocol) || !errors.Is(err, manifest.ErrNotTree) {
				t.Errorf("%s, %s pass: %v, want a protocol error: not a tree", name, kind, err)
			}
		}
	}
}

// rsync's flag for paths that vanished while listed (a directory renamed
// away) is a vanished source (exit 24), not a failure (exit 23); any other
// I/O error is a failure. Either way nothing is deleted.
func TestFileListVanishedFlag(t *testing.T) {
	list := [][2]string{{".", "dir"}, {"d", "dir"}}
	for flag, want := range map[int32][2]int64{ioErrVanished: {0, 1}, ioErrGeneral: {1, 0}, ioErrGeneral | ioErrVanished: {1, 0}} {
		res, err := runList(t, engine.Initial, flistBytes(list...), flag)
		if err != nil {
			t.Fatalf("I/O error flag %d: %v", flag, err)
		}
		if got := [2]int64{res.Stats.Failed, res.Stats.Vanished}; got != want {
			t.Errorf("I/O error flag %d: failed, vanished = %v, want %v (%+v)", flag, got, want, res.Problems)
		}
		sc, err := listClient(flistBytes(list...), flag).Scan(context.Background(), tree.ScanConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if p := sc.Problems(); len(p) != 1 || errors.Is(p[0].Err, scan.ErrVanished) != (flag == ioErrVanished) {
			t.Errorf("I/O error flag %d: problems %v", flag, p)
		}
	}
}
