package engine

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/send"
	"github.com/msync/msync/sync/tree"
)

// FsyncPolicy says when written data is flushed to stable storage.
type FsyncPolicy int

// The fsync policies.
const (
	// FsyncPass flushes the destination file system once (syncfs) before
	// the pass's manifests are committed.
	FsyncPass FsyncPolicy = iota
	// FsyncFile fsyncs every file before it is renamed into place.
	FsyncFile
	// FsyncNone leaves flushing to the kernel.
	FsyncNone
)

// ParseFsync parses "file", "pass" or "none".
func ParseFsync(s string) (FsyncPolicy, error) {
	switch s {
	case "pass", "":
		return FsyncPass, nil
	case "file":
		return FsyncFile, nil
	case "none":
		return FsyncNone, nil
	}
	return 0, fmt.Errorf("--fsync=%q: want file, pass or none", s)
}

// DeltaMode says when changed files are sent as deltas.
type DeltaMode int

// The delta modes.
const (
	// DeltaAuto copies whole files between local trees (a delta reads the
	// old copy as well as the new one, which costs more than it saves when
	// both are on local disks).
	DeltaAuto DeltaMode = iota
	// DeltaAlways sends every changed file with an old copy as a delta,
	// using the append fast path when the old copy is a proven prefix.
	DeltaAlways
	// DeltaNever copies whole files.
	DeltaNever
)

// ParseDelta parses "auto", "always" or "never".
func ParseDelta(s string) (DeltaMode, error) {
	switch s {
	case "auto", "":
		return DeltaAuto, nil
	case "always":
		return DeltaAlways, nil
	case "never":
		return DeltaNever, nil
	}
	return 0, fmt.Errorf("--delta=%q: want auto, always or never", s)
}

// Kind is the kind of pass.
type Kind string

// Pass kinds.
const (
	Initial Kind = "initial"
	Catchup Kind = "catchup"
)

// Options configure one pass.
type Options struct {
	Kind Kind
	// Src and Dst are the trees' paths; Src names the source in messages
	// when Source is set.
	Src, Dst string
	// Source is the tree to copy from; nil means the local directory Src.
	// A remote source (transport/remote) streams its scan and file data
	// over a connection; the pass itself always runs where Dst is.
	Source   Source
	StateDir string // required
	// DstRoot, when set, is the destination already open (a daemon
	// resolved it beneath its module): the pass reads and writes through
	// it and never opens Dst, which then only names the destination.
	DstRoot *fsx.Root
	// DstCreated says the caller created DstRoot for this pass (reported
	// as created, as rsync does); with DryRun and no DstRoot, that the
	// destination does not exist yet.
	DstCreated bool

	// Final makes the pass prove that the source stayed quiet: a re-scan
	// after the pass must find it unchanged.
	Final bool
	// DryRun reports what would change and changes nothing.
	DryRun bool
	// TrustDest compares with the destination's committed manifest instead
	// of scanning it, when the last pass completed: half the system calls,
	// for a destination nothing else writes to (the downtime pass).
	TrustDest bool
	// DeleteExtraneous also deletes destination paths msync did not put there.
	DeleteExtraneous bool
	// DeleteOnlyAsked deletes nothing unless DeleteExtraneous asks, not
	// even what killed passes put at the destination and the source no
	// longer has: rsync's semantics, for its daemon.
	DeleteOnlyAsked bool
	Exclude         []string // rsync-style patterns (see internal/filter)
	// Xattrs copies extended attributes (user., and trusted./security. as root).
	Xattrs bool
	// Sparse leaves holes at the destination where aligned 4 KiB blocks of
	// a written file are zero, like rsync --sparse.
	Sparse bool
	// NoDirectIO writes large local whole-file copies through the page
	// cache instead of with O_DIRECT (see fsx.CopyDirect).
	NoDirectIO bool
	// Owners copies numeric uid/gid (default: when running as root).
	Owners  bool
	Fsync   FsyncPolicy
	Delta   DeltaMode
	Workers int // file transfers in parallel; 0 means 4
	Retries int // re-reads of a file that changed while read; default 2

	// Rules, if set, carry what the dataset's class knows about its files
	// (see sync/class).
	Rules Rules

	// OnItem, if set, is called for every change in rsync's %i format.
	OnItem func(Item)
	// Counters, if set, is updated as the pass goes (for progress bars).
	Counters *Counters
	// Log receives notes (skipped sockets, cleaned temp files).
	Log io.Writer
}

// Item is one itemized change: Code is rsync's 11-character %i string.
type Item struct {
	Code string
	Path string // "./" for the root, "dir/" for directories
	Note string // " -> target" for symlinks, " => leader" for hard links
}

// String formats the item as rsync -i prints it, escaping unprintable bytes.
func (it Item) String() string {
	return it.Code + " " + manifest.Escape(it.Path) + manifest.Escape(it.Note)
}

// Counters are live totals of a running pass, safe to read concurrently.
type Counters struct {
	Scanned      atomic.Int64 // source entries scanned
	FilesDone    atomic.Int64 // files transferred
	BytesDone    atomic.Int64 // file bytes transferred (content, not wire)
	BytesQueued  atomic.Int64 // file bytes queued for transfer
	FilesQueued  atomic.Int64
	ScanFinished atomic.Bool
}

// Rules answer a pass's per-file questions for one class of data (a
// dataset's class in a plan: mbox archives, mail queues, darcs repositories).
// sync/class implements them.
type Rules interface {
	// Class names the class in pass records.
	Class() string
	// Hold says why the source file s stays as it is at the destination
	// this pass (neither copied nor deleted), or "". prev and next are the
	// neighbouring source paths in manifest order.
	Hold(s *manifest.Entry, prev, next string) string
	// Immutable: same name and size means same content; never a delta.
	Immutable(path string) bool
	// Last: written only after the other files of its directory.
	Last(path string) bool
	// Growing: grows by appending; the append path is tried even locally.
	Growing(path string) bool
	// Transient: vanishing during a pass is normal, not an error.
	Transient(path string) bool
	// Queued: one queued message, counted on both sides.
	Queued(path string) bool
}

// Source is what a pass needs from the tree it copies: a scan in manifest
// order and the content of its files (see sync/tree).
type Source interface {
	// String names the source in messages ("host:/srv/mail").
	String() string
	// Join names one path of the source in messages.
	Join(rel string) string
	Scan(ctx context.Context, c tree.ScanConfig) (tree.Scan, error)
	Fetch(ctx context.Context, req *send.Request) (tree.Reply, error)
}
