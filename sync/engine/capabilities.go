package engine

import (
	"github.com/msync/msync/internal/fsx"
)

// What the engine asks of a Source beyond the Source interface, each a
// capability the source has or not; the engine looks for them by these
// interfaces alone and never names a source's concrete type. A wrapper
// that forwards a source (transport.PendingSource) must forward them too.

// localTree is a source on this host: workers read its files directly,
// beneath its root (no request, no reply), and the state directory names it
// by its file system identity (state.LocalEnd). sync/tree's Local is one.
type localTree interface {
	Source
	// OpenRoot opens the tree's root, for the caller to close.
	OpenRoot() (*fsx.Root, error)
	// HostPath is the tree's path on this host.
	HostPath() string
}

// basisSigner is a source that signs the receiver's old copy of a file its
// own way: the engine hands it the old copy (send.Request.Basis) instead of
// msync's signature. Stock rsync is one (see send.BasisSigner).
type basisSigner interface {
	SignsBasis() bool
}

// aheadFetcher is a source whose Fetch only queues a request, the answer
// arriving on the reply: the engine asks for each new file when it decides
// to copy it, ahead of the worker that writes it (see send.AheadFetcher).
type aheadFetcher interface {
	FetchesAhead() bool
}

// wireCounter is a source that counts the bytes that crossed its wire:
// the pass reports them as Stats.WireBytes instead of its estimate.
type wireCounter interface {
	WireBytes() int64
}
