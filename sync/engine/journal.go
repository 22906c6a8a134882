package engine

import (
	"fmt"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/state"
)

// A name becomes visible at the destination only after the state can prove
// that msync put it there: every rename, link, mkdir, symlink or mknod of a
// pass is preceded by its intent in the state's journal (state.Journal),
// and a pass after a killed one treats each journaled name as one of the
// last committed manifest's.

// intent journals that path (of type t) is about to become visible and
// returns its sequence number for visible; 0 in a dry run.
func (ap *applier) intent(path string, t manifest.Type) uint64 {
	if ap.journal == nil {
		return 0
	}
	return ap.journal.Add(path, t)
}

// ready returns once the intent seq is in the journal. When the journal
// cannot be written, the pass stops: nothing more may become visible that
// the next pass could not attribute.
func (ap *applier) ready(seq uint64) error {
	if ap.journal == nil || seq == 0 {
		return nil
	}
	if err := ap.journal.Ensure(seq); err != nil {
		ap.t.stop(fmt.Errorf("%w: %w", errStopped, err))
		return err
	}
	return nil
}

// made tells the test hook that op (rename, mkdir, special, link) made path
// visible.
func made(op, path string) {
	if h := TestHooks.AfterVisible; h != nil {
		h(op, path)
	}
}

// attributed opens the journals of killed passes as sorted streams of what
// those passes may have put at the destination.
func attributed(journals []string) ([]manifest.Iterator, func(), error) {
	var its []manifest.Iterator
	var rs []*state.JournalReader
	closeAll := func() {
		for _, r := range rs {
			r.Close()
		}
	}
	for _, path := range journals {
		r, err := state.OpenJournal(path)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		rs = append(rs, r)
		its = append(its, r)
	}
	return its, closeAll, nil
}
