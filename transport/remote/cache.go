package remote

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/msync/msync/manifest"
	"github.com/msync/msync/transport/wire"
)

// scansKept is how many full scans of one tree a serving end keeps: the
// receiver's base is the last scan it received completely, which may be a
// pass or two older than the last one sent.
const scansKept = 3

// scanCache is where a serving end keeps its last full scans of one tree
// (with one set of scan options), named by their Sum, so that the next
// scan can be sent as a diff: $XDG_CACHE_HOME/msync/scans/KEY/SUM.
type scanCache struct{ dir string }

func openScanCache(root string, req wire.ScanRequest) *scanCache {
	base, err := os.UserCacheDir()
	if err != nil {
		return nil
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil
	}
	k := sha256.Sum256([]byte(abs + "\x00" + strings.Join(req.Exclude, "\x00") + "\x00" + strings.Join(req.Xattrs, ",")))
	top := filepath.Join(base, "msync", "scans")
	dir := filepath.Join(top, hex.EncodeToString(k[:12]))
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) && !roomForScans(top) {
		return nil // the cache is an optimisation: this tree's scans go whole
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil
	}
	now := time.Now()
	os.Chtimes(dir, now, now) // in use
	return &scanCache{dir: dir}
}

// The sets of kept scans (one per tree and scan options) a serving end
// keeps are bounded: the peer chooses the options (its excludes) and the
// tree (a path in a module), and each new set would otherwise keep full
// scans for good. A set unused for scanSetIdle makes room for a new one;
// one in use is never dropped for a new one.
const (
	maxScanSets = 256
	scanSetIdle = 24 * time.Hour
)

// roomForScans reports whether a new set of kept scans may be made
// beneath top, after removing the sets unused for scanSetIdle when there
// are maxScanSets already.
func roomForScans(top string) bool {
	ents, err := os.ReadDir(top)
	if err != nil || len(ents) < maxScanSets {
		return true
	}
	n := len(ents)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > scanSetIdle {
			if os.RemoveAll(filepath.Join(top, e.Name())) == nil {
				n--
			}
		}
	}
	return n < maxScanSets
}

func validSum(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// open returns the kept scan with this Sum, or nil.
func (c *scanCache) open(sum string) *manifest.FileReader {
	if !validSum(sum) {
		return nil
	}
	r, err := manifest.Open(filepath.Join(c.dir, sum))
	if err != nil {
		return nil
	}
	return r
}

// create starts a new kept scan.
func (c *scanCache) create() (*os.File, *manifest.Writer) {
	f, err := os.CreateTemp(c.dir, ".scan-*")
	if err != nil {
		return nil, nil
	}
	w, err := manifest.NewStateWriter(f)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, nil
	}
	return f, w
}

// commit names a complete kept scan by its Sum and drops the oldest.
// Kept scans are not fsynced: a torn one fails its checksum and the next
// scan is sent whole.
func (c *scanCache) commit(f *os.File, sum string) {
	if err := os.Rename(f.Name(), filepath.Join(c.dir, sum)); err != nil {
		return
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type kept struct {
		name string
		mod  int64
	}
	var ks []kept
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && validSum(e.Name()) {
			ks = append(ks, kept{e.Name(), fi.ModTime().UnixNano()})
		}
	}
	slices.SortFunc(ks, func(a, b kept) int { return int(b.mod - a.mod) })
	for i, k := range ks {
		if i >= scansKept && k.name != sum {
			os.Remove(filepath.Join(c.dir, k.name))
		}
	}
}
