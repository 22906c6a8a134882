package migrate

import (
	"context"
	"io"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/verify"
)

// VerifyOptions are a verification's options as the user gave them.
type VerifyOptions struct {
	State    string // state directory (--state); "" for the pair's default, if a pass made it
	Exclude  []string
	NoXattrs bool
	Owners   bool // compare owners
	All      bool // also list matching paths
	Workers  int  // files hashed in parallel on each side
	// Held says why a dataset's class leaves an entry behind ("" when it
	// does not); nil for none.
	Held   func(*manifest.Entry) string
	Remote Remote
	Stderr io.Writer // a remote shell's messages
}

// Verify compares src and dst (local or remote endpoints), each side read
// on its own host.
func Verify(ctx context.Context, src, dst string, o VerifyOptions) (*verify.Report, error) {
	r, err := Resolve(src, dst, o.Remote.Rsync)
	if err != nil {
		return nil, err
	}
	srcSide, closeSrc, err := o.Remote.OpenSide(ctx, o.Stderr, r.Src)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	dstSide, closeDst, err := o.Remote.OpenSide(ctx, o.Stderr, r.Dst)
	if err != nil {
		return nil, err
	}
	defer closeDst()
	vo := verify.Options{Src: src, Dst: dst, SrcSide: srcSide, DstSide: dstSide, Exclude: o.Exclude, Xattrs: !o.NoXattrs,
		Owners: o.Owners, All: o.All, Workers: o.Workers, Held: o.Held}
	if sd := VerifyState(o.State, src, dst); sd != "" {
		// Leftover temps of the pair's killed passes are named as such
		// (still differences); without the state every name is a user's.
		if tag, err := state.ReadTempTag(sd); err == nil && tag != "" {
			vo.OwnTemp = engine.OwnTemp(tag)
		}
	}
	if ok, why := r.xattrs(); !ok {
		vo.Xattrs = false
		vo.NotCompared = append(vo.NotCompared, why)
	} else if o.NoXattrs {
		vo.NotCompared = append(vo.NotCompared, "xattrs and ACLs: --no-xattrs")
	}
	return verify.Run(ctx, vo)
}

// VerifyRecord is what the state directory keeps of a verification that
// started at start: its totals and its first 20 differences.
func VerifyRecord(rep *verify.Report, start time.Time) *record.Verify {
	c := rep.Totals
	v := &record.Verify{Time: start, Duration: time.Since(start), Identical: rep.Identical, Method: rep.Method,
		Same: c.Same, Differ: c.Differ, Missing: c.Missing, Extra: c.Extra, Errors: c.Errors, Held: c.Held, Bytes: c.Bytes,
		NotCompared: rep.NotCompared}
	for _, l := range rep.Lines {
		if l.Code == '=' || l.Code == '~' {
			continue
		}
		if len(v.First) == 20 {
			break
		}
		v.First = append(v.First, l.String())
	}
	return v
}

// RecordVerify writes the record of a verification into the state
// directory sd, for msync status and msync report.
func RecordVerify(sd string, rep *verify.Report, start time.Time) error {
	return state.WriteVerify(sd, VerifyRecord(rep, start))
}
