package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// End identifies one tree of a pair: its host and path, and for a tree on
// this host the file system it is on and its root directory's inode, so
// that another file system mounted at the same path, or the directory
// removed and made again, is not taken for the tree the manifests describe.
// A tree on another host is named as it is reached (RemoteEnd): a daemon's
// port and, for a path relative to a login's home, the user are part of it.
type End struct {
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"` // a daemon's TCP port
	User string `json:"user,omitempty"` // the login whose home a relative remote path is in
	Path string `json:"path"`
	FS   string `json:"fs,omitempty"`       // the file system (statfs f_fsid, else the device), for a tree on this host
	Root uint64 `json:"root_ino,omitempty"` // the root directory's inode

	// old is how manifests recorded this end before ports and users were
	// part of it (identity version 1): accepted from such a manifest, which
	// the next commit writes again (Adopt).
	old *End
}

// identityVersion is the version of the pair record: 2 records a
// daemon's port and a relative path's user. A record without one is
// version 1, whose remote ends left both out.
const identityVersion = 2

// Pair is the identity of a migration: its source and destination. Every
// manifest of a state directory records it (manifest.NewStateWriterFor).
type Pair struct {
	V   int `json:"v,omitempty"` // identityVersion; 0 for version 1
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

// defaultPorts are the daemons' TCP ports when a URL names none: msync's
// (transport.DefaultPort) and rsync's (rsync.DefaultPort).
var defaultPorts = map[string]int{"msync": 7873, "rsync": 873}

// RemoteEnd identifies a tree on another host by the name it is reached
// under: "host:path", "user@host:path", or a URL (msync://host:port/...,
// rsync://...). A daemon's port is kept (another port is another daemon,
// with other trees; no port and the default one are the same), its user
// is not (a module's path is the daemon's, whoever logs in). Over ssh the
// user is kept for a relative path ("alice@h:data" is in alice's home,
// "bob@h:data" in bob's), not for an absolute one: "alice@h:/srv" and
// "root@h:/srv" are one tree. A trailing slash is left out.
func RemoteEnd(name string) End {
	if u, err := url.Parse(name); err == nil && u.Scheme != "" && u.Host != "" {
		port, _ := strconv.Atoi(u.Port())
		e := DaemonEnd(u.Scheme, u.Hostname(), port, u.Path)
		e.old = &End{Host: u.Hostname(), Path: u.Scheme + "://" + trimSlash(u.Path)}
		return e
	}
	host, path := "", name
	if strings.HasPrefix(name, "[") {
		if i := strings.Index(name, "]:"); i > 0 {
			host, path = name[1:i], name[i+2:]
		}
	} else if i := strings.IndexByte(name, ':'); i >= 0 {
		host, path = name[:i], name[i+1:]
	}
	user := ""
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		user, host = host[:i], host[i+1:]
	}
	return ShellEnd(user, host, path)
}

// DaemonEnd identifies path (module[/path]) on the daemon at host:port
// reached as scheme (msync, rsync); port 0 is the scheme's default.
func DaemonEnd(scheme, host string, port int, path string) End {
	if port == 0 {
		port = defaultPorts[scheme]
	}
	return End{Host: host, Port: port, Path: scheme + "://" + trimSlash("/"+strings.TrimLeft(path, "/"))}
}

// ShellEnd identifies path on host reached over a remote shell as user
// ("" for the remote shell's default): the user is kept only when path is
// relative to the login's home.
func ShellEnd(user, host, path string) End {
	e := End{Host: host, Path: trimSlash(path)}
	if !strings.HasPrefix(path, "/") {
		e.User = user
	}
	old := End{Host: host, Path: e.Path}
	e.old = &old
	return e
}

// WithOld returns e with old as the form that identity version 1 recorded
// for it.
func (e End) WithOld(old End) End {
	e.old = &old
	return e
}

func trimSlash(p string) string {
	if t := strings.TrimRight(p, "/"); t != "" {
		return t
	}
	return p
}

// same reports whether e, as recorded, and o, as it is now, name the
// same tree. The file system and the root inode are compared when the
// record knows them: a tree recorded with its root directory that is now
// gone is not the same.
func (e End) same(o End) bool {
	return e.Host == o.Host && e.Port == o.Port && e.User == o.User && e.Path == o.Path &&
		(e.FS == "" || e.FS == o.FS) &&
		(e.Root == 0 || e.Root == o.Root)
}

// sameV1 is same for a record of identity version 1, which left remote
// ends' ports and users out: o is compared in the form it had then.
func (e End) sameV1(o End) bool {
	return e.same(o) || o.old != nil && e.same(*o.old)
}

// recreated reports whether e, as recorded, and o, as it is now, name
// the same directory on this host and file system, removed since (o does
// not exist) or removed and made again (another root inode).
func (e End) recreated(o End) bool {
	return e.Host == o.Host && e.Port == o.Port && e.User == o.User && e.Path == o.Path &&
		e.Root != 0 && e.Root != o.Root && (o.Root == 0 || e.FS == o.FS)
}

func (e End) String() string {
	s := e.Path
	if e.Host != "" {
		h := e.Host
		if e.User != "" {
			h = e.User + "@" + h
		}
		if e.Port != 0 {
			h = net.JoinHostPort(h, strconv.Itoa(e.Port))
		}
		s = h + ":" + s
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

// ErrRecreated is wrapped by the error of a pass whose destination was
// removed, or removed and made again, since the manifests were written.
var ErrRecreated = errors.New("removed (or removed and made again) since the last pass")

// RecreatedError says that the state directory's manifests describe the
// destination as it was before it was removed: same host, path and file
// system, but its root directory is gone or another. Nothing they record
// can be attributed in the new directory; an initial pass starts over
// (Reset), a catch-up is refused.
type RecreatedError struct {
	Dir, File         string
	Recorded, Current Pair
}

func (e *RecreatedError) Error() string {
	return fmt.Sprintf("state directory %s: the destination was %v: %s records\n  %s\nbut this pass is\n  %s",
		e.Dir, ErrRecreated, e.File, e.Recorded, e.Current)
}

func (e *RecreatedError) Unwrap() error { return ErrRecreated }

// Bind ties the state directory to the pair p before its manifests are
// read: a committed manifest, or one a killed pass left, that records
// another pair is refused (*ForeignError), and one that records p's
// destination as it was before it was removed (or removed and made
// again) too (*RecreatedError). Manifests written before manifests
// recorded their pair, or before their pair recorded remote ends' ports
// and users, are read as before; the next commit writes them again with
// p (Adopt). Every manifest the pass then writes through NewWriter
// records p.
func (d *Dir) Bind(p Pair) error {
	p.V = identityVersion
	d.adopt = false
	if d.fresh {
		return d.setPair(p)
	}
	paths := []string{d.ManifestPath(Source), d.ManifestPath(Dest), d.PendingPath()}
	more, err := filepath.Glob(d.ManifestPath(Source) + ".interrupted.*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	var recreated error
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
		same := End.same
		if rec.V < identityVersion {
			same = End.sameV1
		}
		if jerr == nil {
			if same(rec.Src, p.Src) && same(rec.Dst, p.Dst) {
				r.Close()
				d.adopt = d.adopt || rec.V != p.V
				continue
			}
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
		if same(rec.Src, p.Src) && rec.Dst.recreated(p.Dst) {
			if recreated == nil {
				recreated = &RecreatedError{Dir: d.Path, File: path, Recorded: rec, Current: p}
			}
			continue
		}
		return &ForeignError{Dir: d.Path, File: path, Recorded: rec, Current: p}
	}
	if recreated != nil {
		return recreated
	}
	return d.setPair(p)
}

func (d *Dir) setPair(p Pair) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	d.pair = b
	return nil
}

// Reset starts the state directory over from empty, for a destination
// removed (or removed and made again) since its manifests were written
// (*RecreatedError): the manifests, the pending and interrupted ones, the
// journals, the mark of a running pass and the records about the
// destination's contents go; the history of passes and the temp tag stay.
// The journals go first and the manifests, which record the pair, last:
// a reset that is killed halfway is refused or done again by the next
// pass, never half taken. With dryRun nothing is removed: the state reads
// as empty until Close.
func (d *Dir) Reset(dryRun bool) error {
	d.fresh = true
	if dryRun {
		return nil
	}
	var paths []string
	for _, g := range []string{d.JournalPath() + ".interrupted.*", d.ManifestPath(Source) + ".interrupted.*"} {
		m, err := filepath.Glob(g)
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
		paths = append(paths, m...)
	}
	paths = append([]string{d.JournalPath()}, paths...)
	paths = append(paths, d.PendingPath(), d.runningPath(), d.xattrsPath(), verifyPath(d.Path),
		d.ManifestPath(Dest), d.ManifestPath(Source))
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("state: start over: %w", err)
		}
	}
	if err := syncDir(d.Path); err != nil {
		return fmt.Errorf("state: start over: %w", err)
	}
	d.fresh = false
	return nil
}

// Unsettled returns the manifests of killed passes that TakeInterrupted
// would take, without moving any: for a dry run.
func (d *Dir) Unsettled() []string {
	if d.fresh {
		return nil
	}
	out, _ := filepath.Glob(d.ManifestPath(Source) + ".interrupted.*")
	if _, err := os.Stat(d.PendingPath()); err == nil {
		out = append(out, d.PendingPath())
	}
	return out
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
