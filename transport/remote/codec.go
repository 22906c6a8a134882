package remote

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/msync/msync/record"
	"github.com/msync/msync/sync/class"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/transport/wire"
)

// The conversions between the domain and msync's protocol: wire types
// never leave transport (the wire package and these functions).

// PushOptions are the options of a pass that runs on the peer with this
// host's tree as its source (a push): what of engine.Options crosses the
// wire. They live here, not in transport, because the serving end of this
// package (Serve) turns them into the pass's engine.Options, and transport
// imports this package.
type PushOptions struct {
	Kind engine.Kind
	// SrcName names the source in the receiver's state and messages.
	SrcName string
	// StateDir is where the receiver keeps the pass's state; "" is its
	// default. A daemon refuses one (ServerConfig.StateDir).
	StateDir         string
	Final            bool
	DryRun           bool
	TrustDest        bool
	DeleteExtraneous bool
	Exclude          []string
	Xattrs           bool
	Sparse           bool
	Owners           bool
	OwnersAuto       bool // copy owners when the receiver runs as root
	Fsync            engine.FsyncPolicy
	Delta            engine.DeltaMode
	Workers          int
	Itemize          bool // send each change back (PushHandlers.OnItem)
	Progress         bool // send the pass's counters back (PushHandlers.Counters)
	// Class is the dataset's class, "" for none, and MaxAge its max_age:
	// the receiving end applies the class's rules.
	Class  class.Name
	MaxAge time.Duration
}

// The protocol's names of the fsync policies and delta modes.
var (
	fsyncNames = map[engine.FsyncPolicy]string{engine.FsyncPass: "pass", engine.FsyncFile: "file", engine.FsyncNone: "none"}
	deltaNames = map[engine.DeltaMode]string{engine.DeltaAuto: "auto", engine.DeltaAlways: "always", engine.DeltaNever: "never"}
)

// OptionsToWire converts a push's options to their wire form.
func OptionsToWire(o *PushOptions) wire.PassOptions {
	return wire.PassOptions{Kind: string(o.Kind), SrcName: o.SrcName, StateDir: o.StateDir, Final: o.Final,
		DryRun: o.DryRun, TrustDest: o.TrustDest, DeleteExtraneous: o.DeleteExtraneous, Exclude: o.Exclude,
		Xattrs: o.Xattrs, Sparse: o.Sparse, Owners: o.Owners, OwnersAuto: o.OwnersAuto,
		Fsync: fsyncNames[o.Fsync], Delta: deltaNames[o.Delta], Workers: o.Workers, Itemize: o.Itemize,
		Progress: o.Progress, Class: string(o.Class), MaxAgeSeconds: int64(o.MaxAge / time.Second)}
}

// OptionsFromWire converts the wire form of a push's options, refusing
// what no msync peer sends.
func OptionsFromWire(w *wire.PassOptions) (PushOptions, error) {
	o := PushOptions{Kind: engine.Kind(w.Kind), SrcName: w.SrcName, StateDir: w.StateDir, Final: w.Final,
		DryRun: w.DryRun, TrustDest: w.TrustDest, DeleteExtraneous: w.DeleteExtraneous, Exclude: w.Exclude,
		Xattrs: w.Xattrs, Sparse: w.Sparse, Owners: w.Owners, OwnersAuto: w.OwnersAuto, Workers: w.Workers,
		Itemize: w.Itemize, Progress: w.Progress}
	if o.Kind != engine.Initial && o.Kind != engine.Catchup {
		return o, fmt.Errorf("%w: pass kind %q", wire.ErrProtocol, w.Kind)
	}
	var err error
	if o.Fsync, err = engine.ParseFsync(w.Fsync); err != nil {
		return o, err
	}
	if o.Delta, err = engine.ParseDelta(w.Delta); err != nil {
		return o, err
	}
	if o.Workers < 0 || o.Workers > 256 {
		return o, fmt.Errorf("%w: %d workers", wire.ErrProtocol, o.Workers)
	}
	if w.Class != "" {
		if o.Class, err = class.Parse(w.Class); err != nil {
			return o, fmt.Errorf("%w: %w", wire.ErrProtocol, err)
		}
		if w.MaxAgeSeconds < 0 || w.MaxAgeSeconds > int64(maxAgeLimit/time.Second) {
			return o, fmt.Errorf("%w: max_age %d", wire.ErrProtocol, w.MaxAgeSeconds)
		}
		o.MaxAge = time.Duration(w.MaxAgeSeconds) * time.Second
	}
	return o, nil
}

// maxAgeLimit bounds a peer's max_age (a class's age limit) so that it
// converts to a time.Duration without overflow.
const maxAgeLimit = 100 * 365 * 24 * time.Hour

// EngineOptions returns the engine.Options of a pass run with o: the
// pass's kind and switches, and the rules of its class. The caller sets
// the trees, the state directory and the handlers.
func EngineOptions(o *PushOptions) engine.Options {
	e := engine.Options{Kind: o.Kind, Final: o.Final, DryRun: o.DryRun, TrustDest: o.TrustDest,
		DeleteExtraneous: o.DeleteExtraneous, Exclude: o.Exclude, Xattrs: o.Xattrs, Sparse: o.Sparse,
		Owners: o.Owners, Fsync: o.Fsync, Delta: o.Delta, Workers: o.Workers}
	if o.OwnersAuto {
		e.Owners = os.Geteuid() == 0
	}
	if o.Class != "" {
		e.Rules = o.Class.Rules(class.Config{Final: o.Final, MaxAge: o.MaxAge})
		e.Exclude = append(e.Exclude, o.Class.Excludes()...)
	}
	return e
}

// ResultToWire converts a pass's result to its wire form.
func ResultToWire(r *record.Result) *wire.Result {
	w := &wire.Result{Stats: wire.Stats(r.Stats), NotQuiet: r.NotQuiet, Committed: r.Committed, TrustedDest: r.TrustedDest}
	if r.Problems != nil {
		w.Problems = make([]wire.Problem, len(r.Problems))
		for i, p := range r.Problems {
			w.Problems[i] = wire.Problem(p)
		}
	}
	if r.Queue != nil {
		w.Queue = &wire.Queue{Src: r.Queue.Src, Dst: r.Queue.Dst}
	}
	return w
}

// ResultFromWire converts the wire form of a pass's result.
func ResultFromWire(w *wire.Result) *record.Result {
	r := &record.Result{Stats: record.Stats(w.Stats), NotQuiet: w.NotQuiet, Committed: w.Committed, TrustedDest: w.TrustedDest}
	if w.Problems != nil {
		r.Problems = make([]record.Problem, len(w.Problems))
		for i, p := range w.Problems {
			r.Problems[i] = record.Problem(p)
		}
	}
	if w.Queue != nil {
		r.Queue = &record.Queue{Src: w.Queue.Src, Dst: w.Queue.Dst}
	}
	return r
}

// encodePassResult encodes the TResult payload that ends a push: res (nil
// when the pass did not run) in its wire form and errText, why the pass
// failed ("" when it did not). When the whole would not fit in a frame,
// the lists of paths (problems, paths a final pass saw move) are cut to
// their first entries, 1000 at most, fewer when even those are too long,
// and errText to its first 64 KiB: the client always gets the result.
func encodePassResult(res *record.Result, errText string) []byte {
	pr := wire.PassResult{Err: errText}
	var wr *wire.Result
	if res != nil {
		wr = ResultToWire(res)
		pr.Result, _ = json.Marshal(wr)
	}
	out, err := wire.EncodeJSON(pr)
	if err != nil && len(pr.Err) > maxResultErr {
		pr.Err = strings.ToValidUTF8(pr.Err[:maxResultErr], "") + " [...]"
		out, err = wire.EncodeJSON(pr)
	}
	for _, n := range []int{1000, 100, 10, 0} {
		if err == nil || wr == nil {
			break
		}
		wr.Problems = wr.Problems[:min(len(wr.Problems), n)]
		wr.NotQuiet = wr.NotQuiet[:min(len(wr.NotQuiet), n)]
		pr.Result, _ = json.Marshal(wr)
		out, err = wire.EncodeJSON(pr)
	}
	return out
}

// maxResultErr bounds the text of a failed push's error when the result
// would not fit in a frame otherwise.
const maxResultErr = 64 << 10

// decodePassResult returns the result a TResult frame carries; nil when
// it carries none.
func decodePassResult(pr *wire.PassResult) (*record.Result, error) {
	if len(pr.Result) == 0 {
		return nil, nil
	}
	var w wire.Result
	if err := json.Unmarshal(pr.Result, &w); err != nil {
		return nil, fmt.Errorf("%w: pass result: %v", wire.ErrProtocol, err)
	}
	return ResultFromWire(&w), nil
}
