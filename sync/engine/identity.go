package engine

import (
	"github.com/msync/msync/sync/state"
)

// bind ties the state directory to this pass's pair of trees before any
// manifest is read (state.Dir.Bind): the destination on this host; the
// source on this host too, or named as it is reached (o.Src).
func (p *pass) bind(st *state.Dir) error {
	var pair state.Pair
	var err error
	if p.o.DstRoot != nil {
		pair.Dst, err = state.OpenEnd(p.o.DstRoot.Fd(), p.o.Dst)
	} else {
		pair.Dst, err = state.LocalEnd(p.o.Dst)
	}
	if err != nil {
		return err
	}
	if p.local != nil {
		if pair.Src, err = state.LocalEnd(p.local.Root); err != nil {
			return err
		}
	} else {
		pair.Src = state.RemoteEnd(p.o.Src)
	}
	if err := st.Bind(pair); err != nil {
		return err
	}
	p.st = st
	return nil
}
