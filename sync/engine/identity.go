package engine

import (
	"errors"
	"fmt"
	"os"

	"github.com/msync/msync/sync/state"
)

// bind ties the state directory to this pass's pair of trees before any
// manifest is read (state.Dir.Bind): the destination on this host; the
// source on this host too, or named as it is reached (o.Src).
//
// A destination removed, or removed and made again, since the manifests
// were written (state.RecreatedError) holds nothing they record: an
// initial pass starts over from empty state (nothing is deleted on their
// word), a catch-up is refused.
func (p *pass) bind(st *state.Dir) error {
	var pair state.Pair
	var err error
	switch {
	case p.o.DstRoot != nil:
		pair.Dst, err = state.OpenEnd(p.o.DstRoot.Fd(), p.o.Dst)
	case p.o.DstCreated:
		// A daemon's dry run into a directory it would create: named
		// as the daemon names it, not looked up.
		host, _ := os.Hostname()
		pair.Dst = state.End{Host: host, Path: p.o.Dst}
	default:
		pair.Dst, err = state.LocalEnd(p.o.Dst)
	}
	if err != nil {
		return err
	}
	if p.local != nil {
		if pair.Src, err = state.LocalEnd(p.local.HostPath()); err != nil {
			return err
		}
	} else {
		pair.Src = state.RemoteEnd(p.o.Src)
	}
	err = st.Bind(pair)
	if errors.As(err, new(*state.RecreatedError)) {
		if p.o.Kind != Initial {
			return fmt.Errorf("destination %s: %w; nothing the state records about the old directory holds for this one: run msync initial to copy into it again", p.o.Dst, state.ErrRecreated)
		}
		if err = st.Reset(p.o.DryRun); err != nil {
			return err
		}
		fmt.Fprintf(p.o.Log, "msync: destination %s was removed (or removed and made again) since the last pass: this initial pass starts over from empty state\n", p.o.Dst)
		err = st.Bind(pair)
	}
	if err != nil {
		return err
	}
	p.st = st
	return nil
}
