// Package state keeps what msync remembers between passes of one migration
// (one SRC and DST pair): the last committed manifests of both sides and the
// history of passes. Every file is replaced atomically, and a lock file keeps
// two passes from running on the same pair at once.
package state

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/record"
	"golang.org/x/sys/unix"
)

// Dir is an open, locked state directory.
type Dir struct {
	Path  string
	lock  *os.File
	pair  []byte // the pair's identity, once bound (identity.go)
	adopt bool   // a manifest records no pair yet
	fresh bool   // read as empty: a dry run's Reset
}

// DefaultDir returns the state directory for a SRC and DST pair under
// $XDG_STATE_HOME/msync (or ~/.local/state/msync).
func DefaultDir(src, dst string) (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no --state given and no home directory: %w", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	sum := sha256.Sum256([]byte(src + "\x00" + dst))
	name := sanitize(filepath.Base(src)) + "-to-" + sanitize(filepath.Base(dst)) + "-" + hex.EncodeToString(sum[:4])
	return filepath.Join(base, "msync", name), nil
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Trim(s, ".")
}

// ErrLocked is returned when another pass holds the state directory.
var ErrLocked = errors.New("another msync pass is running on this state directory")

// Open creates (if needed) and locks the state directory at path.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(path, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	d := &Dir{Path: path, lock: f}
	if err := d.removeStaleTemps(); err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// PendingFile starts the next version of a side's manifest under a temp
// name in the state directory (renamed over the manifest by
// CloseAtomicallyReplace). A pass that is killed leaves that temp file
// behind; the next Open removes it.
func (d *Dir) PendingFile(s Side) (*renameio.PendingFile, error) {
	pf, err := renameio.NewPendingFile(d.ManifestPath(s), renameio.WithTempDir(d.Path), renameio.WithPermissions(0o600))
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return pf, nil
}

// SpillPrefix starts the names of the temp files a stock rsync source keeps
// answers in where the file system has no O_TMPFILE (transport/rsync):
// removed as soon as they are open, left only by a kill in between.
const SpillPrefix = ".msync-spill-"

// isStaleTemp reports whether name is the temp file of a manifest that a
// killed pass left: PendingFile's temp names are the manifest's name with
// a dot before it and digits after it; or a spill's (SpillPrefix).
func isStaleTemp(name string) bool {
	if strings.HasPrefix(name, SpillPrefix) {
		return true // an answer's spill, removed at once unless killed in between
	}
	for _, s := range []Side{Source, Dest} {
		rest, ok := strings.CutPrefix(name, "."+string(s)+".manifest")
		if ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}

// removeStaleTemps removes the temp manifests of killed passes. Only a pass
// holding the lock writes manifests, so with the lock held none is in use.
func (d *Dir) removeStaleTemps() error {
	ents, err := os.ReadDir(d.Path)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() && isStaleTemp(e.Name()) {
			if err := os.Remove(filepath.Join(d.Path, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("state directory: remove a killed pass's temp manifest: %w", err)
			}
		}
	}
	return nil
}

// Close releases the lock.
func (d *Dir) Close() error { return d.lock.Close() }

func (d *Dir) runningPath() string { return filepath.Join(d.Path, "pass-in-progress") }

// Begin marks a pass as running. A marker left behind tells the next pass
// that the previous one was interrupted, so the destination may differ from
// its committed manifest.
func (d *Dir) Begin() error {
	if err := os.WriteFile(d.runningPath(), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Done clears the mark of Begin after the pass committed.
func (d *Dir) Done() error {
	if err := os.Remove(d.runningPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Interrupted reports whether a pass began and never finished.
func (d *Dir) Interrupted() bool {
	if d.fresh {
		return false
	}
	_, err := os.Stat(d.runningPath())
	return err == nil
}

// PendingPath is where a pass writes its new source manifest as it goes;
// it is renamed to the committed manifest when the pass completes.
func (d *Dir) PendingPath() string { return d.ManifestPath(Source) + ".pending" }

// TakeInterrupted moves the pending manifest a killed pass left behind
// aside and returns every such manifest not yet settled: they list what
// those passes may have put at the destination.
func (d *Dir) TakeInterrupted() ([]string, error) {
	if _, err := os.Stat(d.PendingPath()); err == nil {
		aside := fmt.Sprintf("%s.interrupted.%d", d.ManifestPath(Source), time.Now().UnixNano())
		if err := os.Rename(d.PendingPath(), aside); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
	}
	return filepath.Glob(d.ManifestPath(Source) + ".interrupted.*")
}

// SettleInterrupted removes the manifests TakeInterrupted returned, once a
// pass that took them into account has committed.
func (d *Dir) SettleInterrupted(paths []string) error {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("state: %w", err)
		}
	}
	return nil
}

// Side names one end of a migration.
type Side string

// The two sides.
const (
	Source Side = "src"
	Dest   Side = "dst"
)

// ManifestPath returns the path of a side's committed manifest.
func (d *Dir) ManifestPath(s Side) string { return filepath.Join(d.Path, string(s)+".manifest") }

// OpenManifest opens a side's committed manifest; (nil, nil) when there is none.
func (d *Dir) OpenManifest(s Side) (*manifest.FileReader, error) {
	if d.fresh {
		return nil, nil
	}
	r, err := manifest.Open(d.ManifestPath(s))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return r, err
}

func (d *Dir) historyPath() string { return filepath.Join(d.Path, "passes.jsonl") }

// AppendPass appends a pass record and fsyncs the history.
func (d *Dir) AppendPass(p *record.Pass) error {
	b, err := record.EncodePassLine(p)
	if err != nil {
		return fmt.Errorf("pass history: %w", err)
	}
	f, err := os.OpenFile(d.historyPath(), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pass history: %w", err)
	}
	if err := dropTornLine(f); err != nil {
		f.Close()
		return fmt.Errorf("pass history %s: %w", f.Name(), err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("pass history: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pass history: %w", err)
	}
	return f.Close()
}

// dropTornLine cuts the history f after its last newline: what follows
// is a record whose append was torn (a pass killed while writing it, or
// a full disk), which Passes ignores as the last line, and which the
// next record must not be glued to.
func dropTornLine(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for end := fi.Size(); end > 0; {
		n := min(end, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end -= n - int64(i) - 1
			if end == fi.Size() {
				return nil
			}
			return f.Truncate(end)
		}
		end -= n
	}
	return f.Truncate(0)
}

// Passes reads the pass history. A torn last line (a pass killed while
// appending) is ignored; other malformed lines are errors, and so is a
// line of a version this msync cannot read (*record.VersionError).
func Passes(dir string) ([]record.Pass, error) {
	f, err := os.Open(filepath.Join(dir, "passes.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []record.Pass
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if err == io.EOF {
			return out, nil // a line without newline is a torn append
		}
		if err != nil {
			return nil, err
		}
		p, err := record.DecodePassLine(b)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", f.Name(), line, err)
		}
		out = append(out, p)
	}
}

// LastPassEnd returns the end time of the last successful non-dry pass.
func LastPassEnd(dir string) (time.Time, error) {
	ps, err := Passes(dir)
	if err != nil {
		return time.Time{}, err
	}
	return LastEnd(ps), nil
}

// LastEnd returns the end time of the last successful non-dry pass of a
// history; zero when there is none.
func LastEnd(ps []record.Pass) time.Time {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].OK && !ps[i].DryRun {
			return ps[i].End
		}
	}
	return time.Time{}
}

func verifyPath(dir string) string { return filepath.Join(dir, "verify.json") }

// WriteVerify replaces the record of the last verification in dir.
func WriteVerify(dir string, v *record.Verify) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	b, err := json.MarshalIndent(record.VerifyToJSON(v), "", "  ")
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(verifyPath(dir), append(b, '\n'), 0o600, renameio.WithTempDir(dir)); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// LastVerify reads the record of the last verification; nil when none.
func LastVerify(dir string) (*record.Verify, error) {
	b, err := os.ReadFile(verifyPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var v record.VerifyJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("state: %s: %w", verifyPath(dir), err)
	}
	return record.VerifyFromJSON(&v), nil
}

// OpenCommitted opens a side's committed manifest in the state directory
// dir without taking its lock (a committed manifest is only ever replaced
// by a rename, so a reader sees one whole version); (nil, nil) when there
// is none. A running pass is neither blocked nor disturbed.
func OpenCommitted(dir string, s Side) (*manifest.FileReader, error) {
	r, err := manifest.Open(filepath.Join(dir, string(s)+".manifest"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return r, err
}
