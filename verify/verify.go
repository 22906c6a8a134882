// Package verify compares two trees side by side: both are scanned and every
// regular file is hashed on its own side, concurrently, then the two sorted
// streams are merge-joined. The report reads like `rclone check --combined`:
// "=" same, "*" differs (and in what), "-" missing at the destination, "+"
// extra at the destination, "!" unreadable.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/msync/msync/internal/filter"
	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"github.com/msync/msync/sync/tree"
)

// Side is one tree being verified: scanned and hashed where it lives
// (tree.Local here, transport/remote across a connection).
type Side interface {
	String() string
	Scan(ctx context.Context, c tree.ScanConfig) (tree.Scan, error)
}

// digester is a Side that can hash only with one digest (stock rsync:
// MD4); the other side then hashes with the same.
type digester interface{ Digest() string }

// fileLinker is a Side whose scan tells hard links of regular files only
// (stock rsync's protocol 27): links between other objects go uncompared.
type fileLinker interface{ FileLinksOnly() bool }

// aclProber is a Side that can tell whether its file system stores POSIX
// ACLs (a tree on this host: tree.Local). When it says no, an ACL on the
// other side shows as a difference, and the report says why; a Side that
// cannot tell is not mentioned.
type aclProber interface {
	ACLSupport() (bool, error)
}

// Options configure a verification.
type Options struct {
	Src, Dst string
	// SrcSide and DstSide, when set, are used instead of the local
	// directories Src and Dst.
	SrcSide, DstSide Side
	Exclude          []string
	Xattrs           bool // compare extended attributes and POSIX ACLs
	Owners           bool // compare numeric uid/gid
	Workers          int  // hashing goroutines per side; 0 means 2
	All              bool // keep "=" lines too
	// Held, if set, says why a source entry missing at the destination is
	// meant to be missing (a class's rule, e.g. old mailman bad/ files left
	// behind): listed with "~", not a difference.
	Held func(e *manifest.Entry) string
	// Progress, if set, is called with bytes hashed so far on both sides.
	Progress func(bytes int64)
	// NotCompared, if set, lists what the caller left out and why (as
	// "what: why", e.g. "xattrs and ACLs: rsync's protocol 27 carries
	// none"); the report names it. Run adds what it leaves out itself.
	NotCompared []string
	// OwnTemp, if set, says which names are the temp files of the pair's
	// own migration (its state's temp tag): one extra at the destination
	// is listed as a killed pass's leftover, still a difference. Nil:
	// every name is an ordinary name.
	OwnTemp func(name string) bool
}

// Line is one path of the report.
type Line struct {
	Code byte     `json:"-"`
	Sign string   `json:"code"`
	Path string   `json:"path"`
	What []string `json:"what,omitempty"` // for "*": content, type, mode, owner, mtime, target, xattr, acl, links, device
	Err  string   `json:"error,omitempty"`
}

func (l Line) String() string {
	s := string(l.Code) + " " + displayPath(l.Path)
	if len(l.What) > 0 {
		s += " (" + strings.Join(l.What, ", ") + ")"
	}
	if l.Err != "" {
		s += ": " + manifest.Escape(l.Err)
	}
	return s
}

func displayPath(p string) string {
	if p == "" {
		return "./"
	}
	return manifest.Escape(p)
}

// Counts tallies the report's lines.
type Counts struct {
	Same    int64 `json:"same"`
	Differ  int64 `json:"differ"`
	Missing int64 `json:"missing"`
	Extra   int64 `json:"extra"`
	Errors  int64 `json:"errors"`
	Held    int64 `json:"held,omitempty"` // missing at DST by a class's rule
	Bytes   int64 `json:"bytes_hashed"`
}

func (c *Counts) add(code byte) {
	switch code {
	case '=':
		c.Same++
	case '*':
		c.Differ++
	case '-':
		c.Missing++
	case '+':
		c.Extra++
	case '!':
		c.Errors++
	case '~':
		c.Held++
	}
}

// Identical reports whether nothing differs.
func (c Counts) Identical() bool { return c.Differ+c.Missing+c.Extra+c.Errors == 0 }

// Report is the outcome of a verification.
type Report struct {
	Src       string            `json:"src"`
	Dst       string            `json:"dst"`
	Method    string            `json:"method"`
	Lines     []Line            `json:"lines"`
	Totals    Counts            `json:"totals"`
	ByTop     map[string]Counts `json:"by_top_level"`
	Identical bool              `json:"identical"`
	// NotCompared lists what the verification did not compare, and why,
	// as "what: why". Identical is about what was compared only.
	NotCompared []string `json:"not_compared,omitempty"`
}

type side struct {
	sc tree.Scan
	// fileLinks: only regular files' hard links are compared (fileLinker).
	fileLinks bool
	leaders   map[[2]uint64]string
	bytes     atomic.Int64
}

func (s *side) Next() (*manifest.Entry, error) {
	e, err := s.sc.Next()
	if e != nil && e.Type == manifest.TypeFile && e.HasHash {
		s.bytes.Add(e.Size)
	}
	return e, err
}

func start(ctx context.Context, t Side, o Options, digest string) (*side, error) {
	ns := []string(nil)
	if o.Xattrs {
		ns = fsx.XattrNamespaces()
	}
	sc, err := t.Scan(ctx, tree.ScanConfig{Exclude: o.Exclude, Xattrs: ns, Hash: true, Digest: digest, Workers: o.Workers})
	if err != nil {
		return nil, err
	}
	return &side{sc: sc, leaders: map[[2]uint64]string{}}, nil
}

// leader returns the first path of e's hard link group seen on this side.
func (s *side) leader(e *manifest.Entry) string {
	if !e.IsHardlinked() {
		return e.Path
	}
	k := [2]uint64{e.Dev, e.Inode}
	if l, ok := s.leaders[k]; ok {
		return l
	}
	s.leaders[k] = e.Path
	return e.Path
}

// Run verifies o.Dst against o.Src.
func Run(ctx context.Context, o Options) (*Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := filter.New(o.Exclude); err != nil {
		return nil, err
	}
	srcSide, dstSide := o.SrcSide, o.DstSide
	if srcSide == nil {
		l := tree.NewLocal(o.Src)
		defer l.Close()
		srcSide = l
	}
	if dstSide == nil {
		l := tree.NewLocal(o.Dst)
		defer l.Close()
		dstSide = l
	}
	digest, method := scan.DigestXXH64, "xxhash64 of every file, each side read on its own host"
	for _, sd := range []Side{srcSide, dstSide} {
		if d, ok := sd.(digester); ok && d.Digest() == scan.DigestMD4 {
			digest, method = scan.DigestMD4, "MD4 of every file (rsync --checksum), computed by stock rsync on its host and by msync here"
		}
	}
	a, err := start(ctx, srcSide, o, digest)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", srcSide, err)
	}
	defer a.sc.Close()
	b, err := start(ctx, dstSide, o, digest)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dstSide, err)
	}
	defer b.sc.Close()
	rep := &Report{Src: srcSide.String(), Dst: dstSide.String(), Method: method, ByTop: map[string]Counts{},
		NotCompared: notCompared(o, srcSide, dstSide)}
	for _, sd := range []Side{srcSide, dstSide} {
		if l, ok := sd.(fileLinker); ok && l.FileLinksOnly() && !a.fileLinks {
			a.fileLinks, b.fileLinks = true, true
			rep.NotCompared = append(rep.NotCompared, "hard links of symlinks, fifos, sockets and devices: rsync's protocol 27 carries those of regular files only")
		}
	}
	record := func(l Line) {
		top := l.Path
		if i := strings.IndexByte(l.Path, '/'); i >= 0 {
			top = l.Path[:i]
		} else if top == "" {
			top = "."
		}
		c := rep.ByTop[top]
		c.add(l.Code)
		rep.ByTop[top] = c
		rep.Totals.add(l.Code)
		if l.Code != '=' || o.All {
			l.Sign = string(l.Code)
			rep.Lines = append(rep.Lines, l)
		}
	}
	n := 0
	err = manifest.Diff(a, b, func(s, d *manifest.Entry) error {
		if n++; n%1024 == 0 && o.Progress != nil {
			o.Progress(a.bytes.Load() + b.bytes.Load())
		}
		switch {
		case d == nil:
			a.leader(s)
			if o.Held != nil {
				if why := o.Held(s); why != "" {
					record(Line{Code: '~', Path: s.Path, Err: why})
					return nil
				}
			}
			record(Line{Code: '-', Path: s.Path})
		case s == nil:
			b.leader(d)
			l := Line{Code: '+', Path: d.Path}
			if o.OwnTemp != nil && o.OwnTemp(d.Path[strings.LastIndexByte(d.Path, '/')+1:]) {
				l.Err = "msync temp left by a killed pass"
			}
			record(l)
		default:
			record(compare(o, a, b, s, d))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, side := range []struct {
		name string
		sc   tree.Scan
	}{{"source", a.sc}, {"destination", b.sc}} {
		for _, p := range side.sc.Problems() {
			record(Line{Code: '!', Path: p.Path, Err: side.name + ": " + p.Err.Error()})
		}
	}
	slices.SortStableFunc(rep.Lines, func(x, y Line) int { return manifest.Compare(x.Path, y.Path) })
	rep.Totals.Bytes = a.bytes.Load() + b.bytes.Load()
	rep.Identical = rep.Totals.Identical()
	return rep, nil
}

// notCompared lists what a verification with o leaves out, and why.
func notCompared(o Options, src, dst Side) []string {
	out := slices.Clone(o.NotCompared)
	if !o.Owners {
		out = append(out, "owners: msync is not root (--owners compares them)")
	}
	if !o.Xattrs {
		if !slices.ContainsFunc(out, func(n string) bool { return strings.HasPrefix(n, "xattrs and ACLs:") }) {
			out = append(out, "xattrs and ACLs: not asked for")
		}
		return out
	}
	if ns := fsx.XattrNamespaces(); !slices.Contains(ns, "trusted.") {
		out = append(out, "trusted. and security. xattrs: only root reads and sets them")
	}
	for _, sd := range []struct {
		name string
		side Side
	}{{"SRC", src}, {"DST", dst}} {
		if p, ok := sd.side.(aclProber); ok {
			if ok, err := p.ACLSupport(); err == nil && !ok {
				out = append(out, "ACLs at "+sd.name+": not supported on "+sd.name+"'s file system (an ACL on the other side shows as a difference)")
			}
		}
	}
	return out
}

func compare(o Options, a, b *side, s, d *manifest.Entry) Line {
	l := Line{Code: '=', Path: s.Path}
	if s.Type != d.Type {
		l.Code, l.What = '*', []string{"type: " + s.Type.String() + " vs " + d.Type.String()}
		return l
	}
	if s.Type == manifest.TypeFile {
		if err := a.sc.HashErr(s.Path); err != nil {
			return Line{Code: '!', Path: s.Path, Err: "source: " + err.Error()}
		}
		if err := b.sc.HashErr(d.Path); err != nil {
			return Line{Code: '!', Path: s.Path, Err: "destination: " + err.Error()}
		}
		if s.Size != d.Size || s.Hash != d.Hash {
			l.What = append(l.What, "content")
		}
	}
	if s.Type != manifest.TypeDir && (s.Type == manifest.TypeFile || !a.fileLinks) && a.leader(s) != b.leader(d) {
		l.What = append(l.What, "links")
	}
	if s.Type == manifest.TypeSymlink && s.LinkTarget != d.LinkTarget {
		l.What = append(l.What, "target")
	}
	if (s.Type == manifest.TypeChar || s.Type == manifest.TypeBlock) && s.Rdev != d.Rdev {
		l.What = append(l.What, "device")
	}
	if s.Type != manifest.TypeSymlink && s.Mode != d.Mode {
		l.What = append(l.What, fmt.Sprintf("mode %04o vs %04o", s.Mode, d.Mode))
	}
	if o.Owners && (s.UID != d.UID || s.GID != d.GID) {
		l.What = append(l.What, fmt.Sprintf("owner %d:%d vs %d:%d", s.UID, s.GID, d.UID, d.GID))
	}
	if s.Mtime != d.Mtime {
		l.What = append(l.What, "mtime")
	}
	if o.Xattrs {
		x, acl := manifest.XattrsDiffer(s.Xattrs, d.Xattrs)
		if x {
			l.What = append(l.What, "xattr")
		}
		if acl {
			l.What = append(l.What, "acl")
		}
	}
	if len(l.What) > 0 {
		l.Code = '*'
	}
	return l
}

// WriteText writes the report's lines and a summary per top-level directory.
func WriteText(w io.Writer, r *Report) error {
	for _, l := range r.Lines {
		fmt.Fprintln(w, l.String())
	}
	tops := make([]string, 0, len(r.ByTop))
	for t := range r.ByTop {
		tops = append(tops, t)
	}
	slices.Sort(tops)
	fmt.Fprintf(w, "\n%-24s %10s %8s %8s %8s %8s\n", "top-level", "same", "differ", "missing", "extra", "errors")
	for _, t := range tops {
		c := r.ByTop[t]
		fmt.Fprintf(w, "%-24s %10d %8d %8d %8d %8d\n", manifest.Escape(t), c.Same, c.Differ, c.Missing, c.Extra, c.Errors)
	}
	c := r.Totals
	fmt.Fprintf(w, "%-24s %10d %8d %8d %8d %8d\n", "total", c.Same, c.Differ, c.Missing, c.Extra, c.Errors)
	if c.Held > 0 {
		fmt.Fprintf(w, "%d source path(s) left behind by the dataset's class (\"~\" above), as planned\n", c.Held)
	}
	verdict := "IDENTICAL"
	if !r.Identical {
		verdict = "DIFFERENT"
	}
	if len(r.NotCompared) > 0 {
		fmt.Fprintln(w, "not compared:")
		for _, n := range r.NotCompared {
			fmt.Fprintln(w, "  "+n)
		}
		if r.Identical {
			verdict = "IDENTICAL in what was compared (see \"not compared\" above)"
		}
	}
	_, err := fmt.Fprintf(w, "%s: %s vs %s (%s, %d bytes hashed)\n", verdict, manifest.Escape(r.Src), manifest.Escape(r.Dst), r.Method, c.Bytes)
	return err
}

// WriteJSON writes the report as one JSON object.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
