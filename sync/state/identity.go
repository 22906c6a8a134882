package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// End identifies one tree of a pair: its host and path, and for a tree on
// this host the file system it is on and its root directory's inode, so
// that another file system mounted at the same path, or the directory
// removed and made again, is not taken for the tree the manifests describe.
type End struct {
	Host string `json:"host,omitempty"`
	Path string `json:"path"`
	FS   string `json:"fs,omitempty"`       // the file system (statfs f_fsid, else the device), for a tree on this host
	Root uint64 `json:"root_ino,omitempty"` // the root directory's inode
}

// Pair is the identity of a migration: its source and destination. Every
// manifest of a state directory records it (manifest.NewStateWriterFor).
type Pair struct {
	Src End `json:"src"`
	Dst End `json:"dst"`
}

// LocalEnd identifies the directory at path on this host. A path that does
// not exist yet is identified by its host and absolute path alone.
func LocalEnd(path string) (End, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return End{}, fmt.Errorf("identify %s: %w", path, err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	host, _ := os.Hostname()
	e := End{Host: host, Path: abs}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return e, nil
		}
		return End{}, fmt.Errorf("identify %s: %w", abs, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(abs, &fs); err != nil {
		return End{}, fmt.Errorf("identify %s: %w", abs, err)
	}
	e.FS, e.Root = fsID(&fs, &st), st.Ino
	return e, nil
}

// OpenEnd identifies the directory open as fd on this host, which name
// stands for (a daemon's module path: the directory is never looked up by
// a path string).
func OpenEnd(fd int, name string) (End, error) {
	host, _ := os.Hostname()
	e := End{Host: host, Path: name}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return End{}, fmt.Errorf("identify %s: %w", name, err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return End{}, fmt.Errorf("identify %s: %w", name, err)
	}
	e.FS, e.Root = fsID(&fs, &st), st.Ino
	return e, nil
}

// fsID names a file system: f_fsid, where it has one, outlives a reboot
// that numbers devices anew (ext4 and btrfs derive it from their UUID).
func fsID(fs *unix.Statfs_t, st *unix.Stat_t) string {
	if fs.Fsid.Val[0] != 0 || fs.Fsid.Val[1] != 0 {
		return fmt.Sprintf("fsid:%08x%08x", uint32(fs.Fsid.Val[0]), uint32(fs.Fsid.Val[1]))
	}
	return fmt.Sprintf("dev:%x", st.Dev)
}

// RemoteEnd identifies a tree on another host by the name it is reached
// under: "host:path", "user@host:path", or a URL (msync://host:port/...,
// rsync://...). The user and the port are left out (a daemon restarted on
// another port serves the same trees), and so is a trailing slash.
func RemoteEnd(name string) End {
	if u, err := url.Parse(name); err == nil && u.Scheme != "" && u.Host != "" {
		return End{Host: u.Hostname(), Path: u.Scheme + "://" + trimSlash(u.Path)}
	}
	host, path := "", name
	if strings.HasPrefix(name, "[") {
		if i := strings.Index(name, "]:"); i > 0 {
			host, path = name[1:i], name[i+2:]
		}
	} else if i := strings.IndexByte(name, ':'); i >= 0 {
		host, path = name[:i], name[i+1:]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	return End{Host: host, Path: trimSlash(path)}
}

func trimSlash(p string) string {
	if t := strings.TrimRight(p, "/"); t != "" {
		return t
	}
	return p
}

// same reports whether e and o name the same tree. The file system and
// root inode are compared when both ends know them.
func (e End) same(o End) bool {
	return e.Host == o.Host && e.Path == o.Path &&
		(e.FS == "" || o.FS == "" || e.FS == o.FS) &&
		(e.Root == 0 || o.Root == 0 || e.Root == o.Root)
}

func (e End) String() string {
	s := e.Path
	if e.Host != "" {
		s = e.Host + ":" + s
	}
	if e.FS != "" {
		s += fmt.Sprintf(" (file system %s, root inode %d)", e.FS, e.Root)
	}
	return s
}

func (p Pair) String() string { return p.Src.String() + " -> " + p.Dst.String() }

// ErrForeign is wrapped by the error that refuses a state directory whose
// manifests belong to another pair.
var ErrForeign = errors.New("the state directory belongs to another pair of trees")

// ForeignError names the state directory, the manifest that belongs to
// another pair, that pair and the current one.
type ForeignError struct {
	Dir, File         string
	Recorded, Current Pair
}

func (e *ForeignError) Error() string {
	return fmt.Sprintf("state directory %s: %v: %s records\n  %s\nbut this pass is\n  %s\n"+
		"its manifests would make this pass delete files msync never put there and miss real deletions; "+
		"give this pair its own state directory (a new --state), or remove %s to start over with msync initial",
		e.Dir, ErrForeign, e.File, e.Recorded, e.Current, e.Dir)
}

func (e *ForeignError) Unwrap() error { return ErrForeign }

// Bind ties the state directory to the pair p before its manifests are
// read: a committed manifest, or one a killed pass left, that records
// another pair is refused (*ForeignError). Manifests written before
// manifests recorded their pair are read as before; the next commit
// writes them again with p (Adopt). Every manifest the pass then writes
// through NewWriter records p.
func (d *Dir) Bind(p Pair) error {
	paths := []string{d.ManifestPath(Source), d.ManifestPath(Dest), d.PendingPath()}
	more, err := filepath.Glob(d.ManifestPath(Source) + ".interrupted.*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	d.adopt = false
	for _, path := range append(paths, more...) {
		r, err := manifest.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			if path == d.ManifestPath(Source) || path == d.ManifestPath(Dest) {
				return fmt.Errorf("state: %w (remove it to start over with msync initial)", err)
			}
			continue // a pass killed before it wrote a header
		}
		ident := r.Identity()
		if ident == nil {
			r.Close()
			d.adopt = true
			continue
		}
		var rec Pair
		jerr := json.Unmarshal(ident, &rec)
		if jerr == nil && rec.Src.same(p.Src) && rec.Dst.same(p.Dst) {
			r.Close()
			continue
		}
		// The trailer's checksum covers the record: a damaged file is
		// reported as such, not as another pair's.
		err = drain(r)
		r.Close()
		switch {
		case err != nil:
			return fmt.Errorf("state: %w (remove it to start over with msync initial)", err)
		case jerr != nil:
			return fmt.Errorf("state: %s: pair identity: %w", path, jerr)
		}
		return &ForeignError{Dir: d.Path, File: path, Recorded: rec, Current: p}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	d.pair = b
	return nil
}

// drain reads a manifest to its end: its trailer checks every record.
func drain(r manifest.Iterator) error {
	for {
		if _, err := r.Next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// Adopt reports whether a manifest Bind read records no pair: it must be
// written again (not kept as it is) so that it records one.
func (d *Dir) Adopt() bool { return d.adopt }

// NewWriter starts a manifest for this state directory: one that records
// the pair given to Bind.
func (d *Dir) NewWriter(w io.Writer) (*manifest.Writer, error) {
	if d.pair == nil {
		return nil, errors.New("state: manifest writer before the state directory was bound to its pair")
	}
	return manifest.NewStateWriterFor(w, d.pair)
}
