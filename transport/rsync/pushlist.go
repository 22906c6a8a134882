package rsync

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	"github.com/msync/msync/manifest"
)

// pushList is the file list of a push, the one thing of the source tree a
// push keeps in memory: rsync's receiver asks for files by their index in
// the list, after the whole list was sent. Per entry it keeps 64 bytes
// (listFile: what the list, the sender and the final re-check read; no
// hash, xattrs, pointer or string header), the path and a symlink's target
// as bytes, and 4 bytes of the receiver's order. Entries and names are
// held in fixed-size chunks: growing the list never copies it.
type pushList struct {
	files [][]listFile // chunks of listChunk entries, in manifest order
	n     int          // entries
	names [][]byte     // chunks of nameChunk bytes; a name never spans two
	wire  []int32      // the receiver's index -> entry; set by sort
}

const (
	listChunk = 1 << 12 // entries per chunk
	nameChunk = 1 << 16 // bytes per chunk of names: more than a path and a target
	maxNames  = 1 << 32 // bytes of names a list can refer to
)

// listFile is one entry of a pushList.
type listFile struct {
	size, mtime, ctime int64
	dev, ino           uint64 // a device's number in dev
	mode, uid, gid     uint32
	name               uint32 // where the path starts: chunk*nameChunk + offset
	plen, tlen         uint16 // the path's length and the symlink target's after it
	typ                manifest.Type
	created            bool // the last committed source manifest had no such path
}

// add appends e, which comes after every entry added before in manifest
// order; created says that the last committed source manifest had no
// such path.
func (l *pushList) add(e *manifest.Entry, created bool) error {
	target := ""
	if e.Type == manifest.TypeSymlink {
		target = e.LinkTarget
	}
	if len(e.Path) > maxPath || len(target) > maxPath {
		return fmt.Errorf("%q: name or symlink target longer than %d bytes", e.Path, maxPath)
	}
	need := len(e.Path) + len(target)
	if len(l.names) == 0 || len(l.names[len(l.names)-1])+need > nameChunk {
		if (len(l.names)+1)*nameChunk > maxNames {
			return fmt.Errorf("more than %d GiB of names in the file list", maxNames>>30)
		}
		l.names = append(l.names, make([]byte, 0, nameChunk))
	}
	last := &l.names[len(l.names)-1]
	f := listFile{size: e.Size, mtime: e.Mtime, ctime: e.Ctime, dev: e.Dev, ino: e.Inode,
		mode: e.Mode, uid: e.UID, gid: e.GID, typ: e.Type, created: created,
		name: uint32((len(l.names)-1)*nameChunk + len(*last)), plen: uint16(len(e.Path)), tlen: uint16(len(target))}
	*last = append(append(*last, e.Path...), target...)
	switch e.Type {
	case manifest.TypeChar, manifest.TypeBlock, manifest.TypeFifo, manifest.TypeSocket:
		f.dev, f.ino = e.Rdev, 0
	}
	if l.n%listChunk == 0 {
		l.files = append(l.files, make([]listFile, 0, listChunk))
	}
	l.files[len(l.files)-1] = append(l.files[len(l.files)-1], f)
	l.n++
	return nil
}

// sort puts the list in the order the receiver indexes it (sendList's).
func (l *pushList) sort() {
	l.wire = make([]int32, l.n)
	for i := range l.wire {
		l.wire[i] = int32(i)
	}
	slices.SortFunc(l.wire, func(a, b int32) int { return bytes.Compare(l.wireName(a), l.wireName(b)) })
}

func (l *pushList) get(i int32) *listFile { return &l.files[i/listChunk][i%listChunk] }

// pathBytes returns the path of entry i, in the list's own memory.
func (l *pushList) pathBytes(i int32) []byte {
	f := l.get(i)
	c, off := f.name/nameChunk, f.name%nameChunk
	return l.names[c][off : off+uint32(f.plen)]
}

func (l *pushList) path(i int32) string { return string(l.pathBytes(i)) }

var dot = []byte(".")

// wireName is the name of entry i as sent: "." for the root.
func (l *pushList) wireName(i int32) []byte {
	if p := l.pathBytes(i); len(p) > 0 {
		return p
	}
	return dot
}

// entry returns entry i as a manifest entry.
func (l *pushList) entry(i int32) *manifest.Entry {
	f := l.get(i)
	e := &manifest.Entry{Path: l.path(i), Type: f.typ, Mode: f.mode, UID: f.uid, GID: f.gid, Size: f.size,
		Mtime: f.mtime, Ctime: f.ctime, Dev: f.dev, Inode: f.ino}
	switch f.typ {
	case manifest.TypeSymlink:
		c, off := f.name/nameChunk, f.name%nameChunk+uint32(f.plen)
		e.LinkTarget = string(l.names[c][off : off+uint32(f.tlen)])
	case manifest.TypeChar, manifest.TypeBlock, manifest.TypeFifo, manifest.TypeSocket:
		e.Dev, e.Rdev = 0, f.dev
	}
	return e
}

func (l *pushList) len() int { return len(l.wire) }

func (l *pushList) at(ndx int) (string, *manifest.Entry) {
	i := l.wire[ndx]
	return string(l.wireName(i)), l.entry(i)
}

// file returns the entry at the receiver's index ndx.
func (l *pushList) file(ndx int32) *listFile { return l.get(l.wire[ndx]) }

// moved merges a re-scan of the source (in manifest order) with the list
// and returns the paths that differ, in manifest order: rsync's quick
// check (type, size, mtime), mode and a symlink's target.
func (l *pushList) moved(again manifest.Iterator) ([]string, error) {
	var out []string
	i := int32(0)
	for {
		n, err := again.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		for ; int(i) < l.n && manifest.Compare(l.path(i), n.Path) < 0; i++ {
			out = append(out, l.path(i)) // vanished
		}
		if int(i) == l.n || l.path(i) != n.Path {
			out = append(out, n.Path) // appeared
			continue
		}
		if o := l.entry(i); o.Type != n.Type || o.Size != n.Size || o.Mtime != n.Mtime || o.Mode != n.Mode || o.LinkTarget != n.LinkTarget {
			out = append(out, n.Path)
		}
		i++
	}
	for ; int(i) < l.n; i++ {
		out = append(out, l.path(i))
	}
	return out, nil
}
