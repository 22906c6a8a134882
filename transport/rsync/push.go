package rsync

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/msync/msync/record"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/state"
	"github.com/msync/msync/sync/tree"
)

// PushOptions describe a pass from a local tree to stock rsync.
type PushOptions struct {
	Endpoint Endpoint
	Src      string // local source directory
	// StateDir is where this host keeps the pass's manifests and record:
	// stock rsync keeps nothing, so a push's state lives with its source.
	StateDir string
	Kind     engine.Kind
	Final    bool // re-scan the source after the pass: was it quiet?
	// DeleteExtraneous deletes every DST path not in SRC (rsync --delete);
	// otherwise a catch-up deletes only what an earlier pass put there.
	DeleteExtraneous bool
	Exclude          []string
	Sparse           bool
	OnItem           func(engine.Item)
	Counters         *engine.Counters
	Log              io.Writer
}

// Push runs one pass into stock rsync: the source is scanned here, sent as
// rsync's file list, and every file the receiver asks for is matched against
// its block sums and sent as block references and literal data in tokens
// of at most 32 KiB. Deletions are those of msync's own record: the
// paths of the last committed source manifest that are gone, handed to the
// receiver's --delete as include rules in front of "- *", so that paths
// msync did not put there stay. The new manifests and the pass record are
// committed in StateDir when the receiver has confirmed the run.
//
// The pass runs on the engine's stages: the planner for a pass without a
// destination scan (engine.PlanSource) merges the scan with the last
// committed source manifest as it streams, and the engine's Recorder
// writes the manifests, commits them and records the pass. Only the file
// list (pushList), which rsync's receiver indexes into, and the topmost
// paths of what is deleted stay in memory.
func Push(ctx context.Context, o PushOptions) (*record.Result, error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = io.Discard
	}
	st, err := openPushState(o)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := st.Begin(); err != nil {
		return nil, err
	}
	rec, err := engine.OpenRecorder(st)
	if err != nil {
		return nil, err
	}
	defer rec.Abort()
	local := tree.NewLocal(o.Src)
	defer local.Close()
	res := &record.Result{}
	p, err := planPush(ctx, st, local, rec, o, res)
	if err != nil {
		return nil, err
	}
	ep := o.Endpoint
	ep.push = true
	ep.delete = len(p.deletions) > 0 || o.DeleteExtraneous
	ep.sparse = o.Sparse
	c, err := Dial(ctx, ep, Options{Log: o.Log})
	if err != nil {
		return nil, err
	}
	defer c.closer()
	defer c.unwatch()
	stop := context.AfterFunc(ctx, func() { c.closer() })
	defer stop()
	if ep.delete {
		if err := c.enc.rawRules(deleteRules(p.deletions, o)); err != nil {
			return nil, err
		}
	}
	if err := p.sendList(c, o); err != nil {
		return nil, fmt.Errorf("%s: sending the file list: %w", ep.Name, err)
	}
	if err := p.serve(ctx, c, local, o, res); err != nil {
		return res, fmt.Errorf("%s: %w", ep.Name, err)
	}
	if cerr := c.closer(); cerr != nil {
		return res, fmt.Errorf("%s: the remote rsync failed: %w", ep.Name, cerr)
	}
	res.Stats.WireBytes = c.WireBytes()
	c.mu.Lock()
	if c.lastErr != "" && res.Stats.Failed == 0 {
		// The receiver reported an error it did not tie to a file we sent.
		res.Stats.Failed++
		res.Problems = append(res.Problems, record.Problem{Err: "receiver: " + c.lastErr})
	}
	c.mu.Unlock()
	info := engine.PassInfo{Kind: o.Kind, Final: o.Final, Start: start, Src: o.Src, Dst: ep.Name,
		Phases: record.PhaseTimes{Transfer: time.Since(start)}}
	if o.Final {
		if res.NotQuiet, err = p.recheck(ctx, local, o.Exclude); err != nil {
			return res, err
		}
	}
	if err := rec.Commit(res); err != nil {
		return res, err
	}
	return res, rec.Record(res, info)
}

// openPushState opens the state directory of o and binds it to the pair:
// a directory that records another pair is refused before anything is
// sent (its source manifest would turn into deletions).
func openPushState(o PushOptions) (*state.Dir, error) {
	st, err := state.Open(o.StateDir)
	if err != nil {
		return nil, err
	}
	srcID, err := state.LocalEnd(o.Src)
	if err == nil {
		err = st.Bind(state.Pair{Src: srcID, Dst: o.Endpoint.identity()})
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// pushPlan is what a push decided before it connects.
type pushPlan struct {
	list *pushList
	// deletions are the topmost paths of what msync put at the destination
	// that the source no longer has (a catch-up's only).
	deletions []string
	unlinked  int // hard-linked entries that are not regular files
}

// planPush merges a scan of the source with the last committed source
// manifest (engine.PlanSource), both streamed in manifest order: every
// entry of the new source goes to rec as both manifests' (after a
// confirmed run the receiver holds what was sent) and to the file list,
// every path gone from it to the deletions.
func planPush(ctx context.Context, st *state.Dir, local *tree.Local, rec *engine.Recorder, o PushOptions, res *record.Result) (*pushPlan, error) {
	last, err := st.OpenManifest(state.Source)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var lastIt manifest.Iterator = manifest.Empty
	if last != nil {
		defer last.Close()
		lastIt = last
	}
	sc, err := local.Scan(ctx, tree.ScanConfig{Exclude: o.Exclude})
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	p := &pushPlan{list: &pushList{}}
	for plan := engine.PlanSource(sc, lastIt); ; {
		step, err := plan.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		e := step.New
		if step.Op == engine.OpDelete {
			if o.Kind == engine.Catchup {
				p.deletions = append(p.deletions, step.Old.Path)
			}
			continue
		}
		if err := rec.Add(e, e); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		if err := p.list.add(e, step.Op == engine.OpCreate); err != nil {
			return nil, fmt.Errorf("file list: %w", err)
		}
		engine.CountSource(&res.Stats, e)
		if e.Type != manifest.TypeFile && e.IsHardlinked() {
			p.unlinked++
		}
	}
	for _, sp := range sc.Problems() {
		res.Problems = append(res.Problems, record.Problem{Path: sp.Path, Err: sp.Err.Error()})
		res.Stats.Failed++
	}
	p.list.sort()
	return p, nil
}

// deleteRules are the receiver's filter rules for a push's deletions.
func deleteRules(deletions []string, o PushOptions) []string {
	var rules []string
	for _, p := range deletions {
		// The path, and all below it when it was a directory: the
		// receiver empties a directory through the same rules.
		rules = append(rules, "+ /"+matchItself(p), "+ /"+escapeWild(p)+"/**")
	}
	if !o.DeleteExtraneous {
		rules = append(rules, "- *")
	}
	for _, x := range o.Exclude {
		rules = append(rules, "- "+x)
	}
	return rules
}

// sendList sends the file list.
func (p *pushPlan) sendList(c *Client, o PushOptions) error {
	if p.unlinked > 0 {
		fmt.Fprintf(o.Log, "msync: %d hard-linked symlinks, fifos, sockets or devices arrive as separate objects: rsync's protocol 27 carries the hard links of regular files only\n", p.unlinked)
	}
	if o.Counters != nil {
		// The receiver decides what it wants: the total grows as it asks.
		o.Counters.Scanned.Store(int64(p.list.n))
		o.Counters.ScanFinished.Store(true)
	}
	return c.enc.writeFileList(p.list, 0)
}

// serve reports the deletions, answers the receiver's requests and waits
// for its goodbye, which confirms it has finished.
func (p *pushPlan) serve(ctx context.Context, c *Client, local *tree.Local, o PushOptions, res *record.Result) error {
	for _, d := range p.deletions {
		res.Stats.Deleted++
		if o.OnItem != nil {
			o.OnItem(engine.Item{Code: "*deleting  ", Path: d})
		}
	}
	err := serveRequests(ctx, c.dec, c.enc, p.list, local, c.seed, func(s sentFile) {
		p.sent(s, local, o, res)
	})
	if err == nil {
		var bye int32
		if bye, err = c.dec.int32(); err == nil && bye != -1 {
			err = protoErr("end of run: got %d, want -1", bye)
		}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	c.mu.Lock()
	last := c.lastErr
	c.mu.Unlock()
	if last != "" && !strings.Contains(err.Error(), last) {
		err = fmt.Errorf("%w (the receiver said: %s)", err, last)
	}
	return err
}

// sent counts, itemizes and reports one file the receiver asked for.
func (p *pushPlan) sent(s sentFile, local *tree.Local, o PushOptions, res *record.Result) {
	if s.err != nil {
		res.Stats.Failed++
		res.Problems = append(res.Problems, record.Problem{Path: s.e.Path, Err: s.err.Error()})
		fmt.Fprintf(o.Log, "%s: %s\n", manifest.Escape(local.Join(s.e.Path)), manifest.EscapeLines(s.err.Error()))
		return
	}
	code := ">f.st......"
	if p.list.file(s.ndx).created {
		code = ">f+++++++++"
		res.Stats.Created++
	} else {
		res.Stats.Updated++
	}
	res.Stats.DataBytes += s.e.Size
	res.Stats.Literal += s.literal
	res.Stats.Matched += s.matched
	res.Stats.Written += s.literal + s.matched
	if s.matched > 0 {
		res.Stats.Deltas++
	}
	if o.OnItem != nil {
		o.OnItem(engine.Item{Code: code, Path: s.e.Path})
	}
	if o.Counters != nil {
		o.Counters.FilesQueued.Add(1)
		o.Counters.BytesQueued.Add(s.e.Size)
		o.Counters.FilesDone.Add(1)
		o.Counters.BytesDone.Add(s.e.Size)
	}
}

// recheck scans the source again after the run (--final) and returns the
// paths that differ from the list sent: the source was not quiet.
func (p *pushPlan) recheck(ctx context.Context, local *tree.Local, exclude []string) ([]string, error) {
	sc, err := local.Scan(ctx, tree.ScanConfig{Exclude: exclude})
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	return p.list.moved(sc)
}

// rawRules sends filter rules as they are, then the list's end.
func (e *encoder) rawRules(rules []string) error {
	for _, r := range rules {
		if len(r) > 2*maxPath {
			return fmt.Errorf("filter rule of %d bytes", len(r))
		}
		e.int32(int32(len(r)))
		e.w.WriteString(r)
	}
	e.int32(0)
	return nil
}

// rsync's filter rules (exclude.c) compare a pattern without any of
// "*?[" with the name as it is, backslashes included; a pattern with one
// of them goes through wildmatch, where a backslash escapes the next
// character.

// matchItself returns the pattern that matches exactly the path p.
func matchItself(p string) string {
	if !strings.ContainsAny(p, "*?[") {
		return p // compared literally: a backslash is itself
	}
	return escapeWild(p)
}

// escapeWild escapes p for a wildmatch pattern: each of "\*?[" stands for
// itself.
func escapeWild(p string) string {
	var b strings.Builder
	for _, r := range []byte(p) {
		if strings.IndexByte(`*?[\`, r) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(r)
	}
	return b.String()
}

// identity names the destination in the state directory's pair: stock
// rsync reports nothing about its file system, so its host and path as
// state.RemoteEnd names them (a daemon's port, a relative path's user).
func (e Endpoint) identity() state.End {
	// What identity version 1 recorded: host and path alone.
	p := e.Path
	if t := strings.TrimRight(p, "/"); t != "" {
		p = t
	}
	if e.Daemon {
		p = "rsync://" + e.Module + "/" + strings.TrimLeft(p, "/")
	}
	old := state.End{Host: e.Host, Path: p}
	if e.Daemon {
		return state.DaemonEnd("rsync", e.Host, e.Port, e.Module+"/"+e.Path).WithOld(old)
	}
	return state.ShellEnd(e.User, e.Host, e.Path).WithOld(old)
}
