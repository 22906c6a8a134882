package rsync

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/scan"
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
func Push(ctx context.Context, o PushOptions) (*engine.Result, error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = io.Discard
	}
	st, err := state.Open(o.StateDir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	srcID, err := state.LocalEnd(o.Src)
	if err != nil {
		return nil, err
	}
	if err := st.Bind(state.Pair{Src: srcID, Dst: o.Endpoint.identity()}); err != nil {
		return nil, err
	}
	prev, err := previousPaths(st)
	if err != nil {
		return nil, err
	}
	local := tree.NewLocal(o.Src)
	defer local.Close()
	entries, problems, err := scanAll(ctx, local, o.Exclude)
	if err != nil {
		return nil, err
	}
	res := &engine.Result{}
	for _, p := range problems {
		res.Problems = append(res.Problems, engine.Problem{Path: p.Path, Err: p.Err.Error()})
		res.Stats.Failed++
	}
	deletions := deletedPaths(prev, entries)
	if o.Kind != engine.Catchup {
		deletions = nil
	}
	ep := o.Endpoint
	ep.push = true
	ep.delete = len(deletions) > 0 || o.DeleteExtraneous
	ep.sparse = o.Sparse
	if err := st.Begin(); err != nil {
		return nil, err
	}
	c, err := Dial(ctx, ep, Options{Log: o.Log})
	if err != nil {
		return nil, err
	}
	defer c.closer()
	defer c.unwatch()
	stop := context.AfterFunc(ctx, func() { c.closer() })
	defer stop()
	if ep.delete {
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
		if err := c.enc.rawRules(rules); err != nil {
			return nil, err
		}
	}
	files := sendList(entries, "")
	unlinked := 0
	for _, f := range files {
		countEntry(&res.Stats, f.e)
		if f.e.Type != manifest.TypeFile && f.e.IsHardlinked() {
			unlinked++
		}
	}
	if unlinked > 0 {
		fmt.Fprintf(o.Log, "msync: %d hard-linked symlinks, fifos, sockets or devices arrive as separate objects: rsync's protocol 27 carries the hard links of regular files only\n", unlinked)
	}
	if o.Counters != nil {
		// The receiver decides what it wants: the total grows as it asks.
		o.Counters.Scanned.Store(int64(len(entries)))
		o.Counters.ScanFinished.Store(true)
	}
	if err := c.enc.writeFileList(files, 0); err != nil {
		return nil, fmt.Errorf("%s: sending the file list: %w", ep.Name, err)
	}
	for _, p := range deletions {
		res.Stats.Deleted++
		if o.OnItem != nil {
			o.OnItem(engine.Item{Code: "*deleting  ", Path: p})
		}
	}
	err = serveRequests(ctx, c.dec, c.enc, files, local, c.seed, func(s sentFile) {
		if s.err != nil {
			res.Stats.Failed++
			res.Problems = append(res.Problems, engine.Problem{Path: s.e.Path, Err: s.err.Error()})
			fmt.Fprintf(o.Log, "%s: %s\n", manifest.Escape(local.Join(s.e.Path)), manifest.EscapeLines(s.err.Error()))
			return
		}
		code := ">f+++++++++"
		if prev[s.e.Path] {
			code = ">f.st......"
			res.Stats.Updated++
		} else {
			res.Stats.Created++
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
	})
	if err == nil {
		// The receiver's goodbye confirms it has finished.
		var bye int32
		if bye, err = c.dec.int32(); err == nil && bye != -1 {
			err = protoErr("end of run: got %d, want -1", bye)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != "" && !strings.Contains(err.Error(), last) {
			err = fmt.Errorf("%w (the receiver said: %s)", err, last)
		}
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
		res.Problems = append(res.Problems, engine.Problem{Err: "receiver: " + c.lastErr})
	}
	c.mu.Unlock()
	transfer := time.Since(start)

	var quiet *bool
	if o.Final {
		again, _, err := scanAll(ctx, local, o.Exclude)
		if err != nil {
			return res, err
		}
		res.NotQuiet = changedPaths(entries, again)
		q := len(res.NotQuiet) == 0
		quiet = &q
	}
	if err := commit(st, entries); err != nil {
		return res, err
	}
	res.Committed = true
	if res.Stats.Failed == 0 {
		if err := st.Done(); err != nil {
			return res, err
		}
	}
	kind := string(o.Kind)
	if o.Final {
		kind = "final"
	}
	rec := &state.Pass{Kind: kind, Start: start, End: time.Now(), Src: o.Src, Dst: ep.Name, OK: res.Stats.Failed == 0,
		Stats: res.Stats, Phases: state.PhaseTimes{Transfer: transfer}, Quiet: quiet}
	if last, err := state.LastPassEnd(st.Path); err == nil && !last.IsZero() {
		rec.GapSeconds = start.Sub(last).Seconds()
	}
	rec.Duration = rec.End.Sub(rec.Start)
	return res, st.AppendPass(rec)
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

// scanAll scans the local tree into memory, in manifest order.
func scanAll(ctx context.Context, local *tree.Local, exclude []string) ([]*manifest.Entry, []scan.Problem, error) {
	sc, err := local.Scan(ctx, tree.ScanConfig{Exclude: exclude})
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	var out []*manifest.Entry
	for {
		e, err := sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("source: %w", err)
		}
		out = append(out, e)
	}
	return out, sc.Problems(), nil
}

// previousPaths reads the paths of the last committed source manifest.
func previousPaths(st *state.Dir) (map[string]bool, error) {
	r, err := st.OpenManifest(state.Source)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if r == nil {
		return map[string]bool{}, nil
	}
	defer r.Close()
	m := map[string]bool{}
	for {
		e, err := r.Next()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		m[e.Path] = true
	}
}

// deletedPaths lists the paths of prev that entries no longer has, only the
// topmost of a deleted subtree.
func deletedPaths(prev map[string]bool, entries []*manifest.Entry) []string {
	now := make(map[string]bool, len(entries))
	for _, e := range entries {
		now[e.Path] = true
	}
	var out []string
	for p := range prev {
		if p == "" || now[p] {
			continue
		}
		top := true
		for q := p; strings.Contains(q, "/"); {
			q = q[:strings.LastIndexByte(q, '/')]
			if prev[q] && !now[q] {
				top = false
				break
			}
		}
		if top {
			out = append(out, p)
		}
	}
	return out
}

// changedPaths lists paths that differ between two scans of the source.
func changedPaths(a, b []*manifest.Entry) []string {
	old := make(map[string]*manifest.Entry, len(a))
	for _, e := range a {
		old[e.Path] = e
	}
	var out []string
	for _, e := range b {
		o := old[e.Path]
		if o == nil || o.Type != e.Type || o.Size != e.Size || o.Mtime != e.Mtime || o.Mode != e.Mode || o.LinkTarget != e.LinkTarget {
			out = append(out, e.Path)
		}
		delete(old, e.Path)
	}
	for p := range old {
		out = append(out, p)
	}
	return out
}

func countEntry(s *engine.Stats, e *manifest.Entry) {
	s.Entries++
	switch e.Type {
	case manifest.TypeFile:
		s.Files++
		s.SrcBytes += e.Size
	case manifest.TypeDir:
		s.Dirs++
	case manifest.TypeSymlink:
		s.Symlinks++
	default:
		s.Specials++
	}
}

// commit writes entries as both manifests: after a confirmed run the
// receiver holds what was sent.
func commit(st *state.Dir, entries []*manifest.Entry) error {
	for _, side := range []state.Side{state.Source, state.Dest} {
		pf, err := st.PendingFile(side)
		if err != nil {
			return err
		}
		defer pf.Cleanup()
		w, err := st.NewWriter(pf)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := w.Add(e); err != nil {
				return fmt.Errorf("state: %w", err)
			}
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("state: %w", err)
		}
		if err := pf.CloseAtomicallyReplace(); err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	return nil
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
