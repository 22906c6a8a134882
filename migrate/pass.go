package migrate

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/sync/class"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport"
	"github.com/msync/msync/transport/remote"
)

// Options are a pass's options as the user gave them.
type Options struct {
	Kind             engine.Kind
	State            string // state directory (--state); "" for the pair's default
	DryRun           bool
	Final            bool
	DeleteExtraneous bool
	TrustDest        bool
	NoXattrs         bool
	Sparse           bool
	NoDirectIO       bool
	Owners           bool // copy owners (--owners)
	NoOwners         bool // never copy owners (--no-owners); neither: as root
	Fsync            string
	Delta            string
	Exclude          []string
	Workers          int
	// Class and MaxAge are a plan dataset's class and max_age.
	Class  class.Name
	MaxAge time.Duration
	Remote Remote

	// Stderr receives a remote shell's messages; Log the notes of the
	// pass (nil: discarded).
	Stderr, Log io.Writer
	OnItem      func(engine.Item) // each change, when itemizing
	Counters    *engine.Counters  // progress; nil for none
}

// OwnersEnabled reports whether owners are copied here: --owners, or as
// root unless --no-owners.
func (o *Options) OwnersEnabled() bool {
	if o.NoOwners {
		return false
	}
	return o.Owners || os.Geteuid() == 0
}

func (o *Options) log() io.Writer {
	if o.Log == nil {
		return io.Discard
	}
	return o.Log
}

// Refuse names the options a route's destination cannot honour; nil when
// it honours them all.
func (r Route) Refuse(o *Options) error {
	c := CapabilitiesOf(r.Dst.Kind)
	var bad []string
	if o.DryRun && !c.DryRun {
		bad = append(bad, "--dry-run")
	}
	if o.TrustDest && !c.TrustDest {
		bad = append(bad, "--trust-dest")
	}
	if o.Delta == "always" && !c.DeltaAlways {
		bad = append(bad, "--delta=always (files cross whole)")
	}
	if o.Fsync == "file" && !c.FsyncFile {
		bad = append(bad, "--fsync=file (the far side's rsync decides)")
	}
	if o.Class != "" && !c.Classes {
		bad = append(bad, "a dataset class (its rules run in msync's receiver)")
	}
	if len(bad) == 0 {
		return nil
	}
	return usage("pushing to stock rsync: not supported with %s", strings.Join(bad, ", "))
}

// Pass runs one pass from src to dst where dst is, and returns its result
// and the state directory used ("" when it is on DST's host).
func Pass(ctx context.Context, src, dst string, o Options) (*record.Result, string, error) {
	fsync, err := engine.ParseFsync(o.Fsync)
	if err != nil {
		return nil, "", err
	}
	dm, err := engine.ParseDelta(o.Delta)
	if err != nil {
		return nil, "", err
	}
	r, err := Resolve(src, dst, o.Remote.Rsync)
	if err != nil {
		return nil, "", err
	}
	if err := r.Refuse(&o); err != nil {
		return nil, "", err
	}
	sd, err := r.StateDir(o.State)
	if err != nil {
		return nil, "", err
	}
	eo := r.engineOptions(src, dst, sd, &o, fsync, dm)
	var res *record.Result
	switch r.Way {
	case Pull:
		res, err = pull(ctx, &o, eo, r.Src)
	case Push:
		res, err = push(ctx, &o, eo, r.Src, r.Dst)
	default:
		res, err = engine.Run(ctx, eo)
	}
	return res, sd, err
}

// engineOptions are the options of the pass on r, with what its source
// cannot carry switched off and the dataset class's rules and excludes.
func (r Route) engineOptions(src, dst, sd string, o *Options, fsync engine.FsyncPolicy, dm engine.DeltaMode) engine.Options {
	eo := engine.Options{Kind: o.Kind, Src: src, Dst: dst, StateDir: sd, Final: o.Final, DryRun: o.DryRun,
		DeleteExtraneous: o.DeleteExtraneous, TrustDest: o.TrustDest, Exclude: o.Exclude, Xattrs: !o.NoXattrs, Sparse: o.Sparse, NoDirectIO: o.NoDirectIO, Owners: o.OwnersEnabled(),
		Fsync: fsync, Delta: dm, Workers: o.Workers, Counters: o.Counters, Log: o.log(), OnItem: o.OnItem}
	if ok, _ := r.xattrs(); !ok {
		eo.Xattrs = false
	}
	if o.Class != "" {
		eo.Rules = o.Class.Rules(class.Config{Final: o.Final, MaxAge: o.MaxAge})
		eo.Exclude = append(append([]string(nil), eo.Exclude...), o.Class.Excludes()...)
	}
	return eo
}

// pull runs the pass here with the far side as its source.
func pull(ctx context.Context, o *Options, eo engine.Options, srcEP transport.Endpoint) (*record.Result, error) {
	if _, serr := os.Stat(eo.Dst); serr == nil {
		// Scan DST while the connection to SRC is being made.
		ps, done := transport.OpenPending(ctx, eo.Src, srcEP.Path, func() (transport.Transport, error) {
			return o.Remote.openSpilling(ctx, o.Stderr, srcEP, false, eo.StateDir)
		})
		eo.Source = ps
		res, err := engine.Run(ctx, eo)
		done()
		return res, err
	}
	t, err := o.Remote.openSpilling(ctx, o.Stderr, srcEP, false, eo.StateDir)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	s, err := t.Source(ctx, srcEP.Path)
	if err != nil {
		return nil, err
	}
	eo.Source = s
	return engine.Run(ctx, eo)
}

// push runs the pass on DST's host with this host's SRC as its source.
func push(ctx context.Context, o *Options, eo engine.Options, srcEP, dstEP transport.Endpoint) (*record.Result, error) {
	fi, err := os.Stat(srcEP.Path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("source %s: not a directory", srcEP.Path)
	}
	t, err := o.Remote.open(ctx, o.Stderr, dstEP, false)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	local := tree.NewLocal(srcEP.Path)
	defer local.Close()
	sd := o.State
	switch {
	case !CapabilitiesOf(dstEP.Kind).KeepsState:
		sd = eo.StateDir
	case dstEP.Kind == transport.Daemon && sd != "":
		// The daemon keeps a push's state beneath its own --state-dir and
		// refuses a client's choice.
		fmt.Fprintf(eo.Log, "msync: --state %s is not used: the msync daemon keeps the state of pushes under its own --state-dir\n", sd)
		sd = ""
	}
	po := remote.PushOptions{Kind: eo.Kind, SrcName: sourceName(srcEP.Path), StateDir: sd, Final: eo.Final,
		DryRun: eo.DryRun, TrustDest: eo.TrustDest, DeleteExtraneous: eo.DeleteExtraneous, Exclude: eo.Exclude,
		Xattrs: eo.Xattrs, Sparse: eo.Sparse, Owners: o.Owners, OwnersAuto: !o.Owners && !o.NoOwners, Fsync: eo.Fsync, Delta: eo.Delta,
		Workers: eo.Workers, Itemize: eo.OnItem != nil, Progress: true, Class: o.Class, MaxAge: o.MaxAge}
	return t.Push(ctx, local, dstEP.Path, po, remote.PushHandlers{OnItem: eo.OnItem, Log: eo.Log, Counters: eo.Counters})
}

// sourceName names a local source for the state directory of a push.
func sourceName(src string) string {
	host, _ := os.Hostname()
	abs, err := filepath.Abs(src)
	if err != nil {
		abs = src
	}
	return host + ":" + abs
}
