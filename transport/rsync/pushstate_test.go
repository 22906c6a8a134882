package rsync

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
)

// A push to stock rsync whose state directory records another pair is
// refused before anything is sent: its source manifest would turn into
// --delete rules for paths msync never put at this destination.
func TestPushRefusesAnotherPairsState(t *testing.T) {
	sd, src := t.TempDir(), t.TempDir()
	d, err := state.Open(sd)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Bind(state.Pair{Src: state.End{Host: "elsewhere", Path: "/srv/a"}, Dst: state.End{Host: "127.0.0.1", Path: "rsync://m/x"}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(d.ManifestPath(state.Source))
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d.Close()
	ep := Endpoint{Daemon: true, Host: "127.0.0.1", Port: 1, Module: "m", Path: "x", Name: "rsync://127.0.0.1:1/m/x"}
	_, err = Push(context.Background(), PushOptions{Endpoint: ep, Src: src, StateDir: sd, Kind: engine.Catchup})
	if !errors.Is(err, state.ErrForeign) {
		t.Fatalf("push with another pair's state: %v, want %v", err, state.ErrForeign)
	}
}
