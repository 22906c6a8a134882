// Package manifest describes a file tree as a sorted stream of entries and
// stores such streams in a compact, versioned, checksummed file format.
//
// Entries are ordered by path components (see Compare), so that a directory
// is immediately followed by its contents and two manifests can be compared
// with a single merge-join pass (see Diff) in O(n) time and O(1) memory.
package manifest

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/bits"

	"github.com/msync/msync/internal/relpath"
	"github.com/msync/msync/internal/xattr"
)

// Type is the kind of a file system object.
type Type uint8

// The types an Entry can have. The numeric values are part of the file
// format and must never change.
const (
	TypeFile    Type = 1
	TypeDir     Type = 2
	TypeSymlink Type = 3
	TypeFifo    Type = 4
	TypeChar    Type = 5
	TypeBlock   Type = 6
	TypeSocket  Type = 7
)

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeFifo:
		return "fifo"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Valid reports whether t is one of the defined types.
func (t Type) Valid() bool { return t >= TypeFile && t <= TypeSocket }

// Xattr is one extended attribute (see internal/xattr).
type Xattr = xattr.Xattr

// Entry is one object of a tree. Path is relative to the tree's root,
// slash-separated, without "." or ".." components; the root itself has the
// empty path. The small fields come first and share a word: 136 bytes, the
// 144-byte size class (a pass holds hundreds of thousands in flight).
type Entry struct {
	Path string
	Type Type
	// HasHash says that Hash holds the content hash.
	HasHash bool
	// Incomplete is set by scanners on a directory whose contents could not
	// be read completely (it travels with a scan streamed to another host).
	// Whoever acts on a scan must not take missing children of such a
	// directory as deletions.
	Incomplete bool
	// Gone marks, in a diff stream only (FlagDiff), a path that no longer
	// exists.
	Gone bool

	Mode  uint32 // permission bits including setuid, setgid and sticky (07777)
	UID   uint32
	GID   uint32
	Nlink uint32
	Size  int64 // regular files: length in bytes; symlinks: length of the target
	Mtime int64 // nanoseconds since the Unix epoch
	Ctime int64 // nanoseconds since the Unix epoch; identity only
	Dev   uint64
	Inode uint64
	Rdev  uint64 // device number of character and block devices

	// Hash is the xxhash64 of a regular file's content; valid when HasHash.
	Hash uint64

	LinkTarget string // symlinks only, verbatim
	Xattrs     []Xattr
}

// SameIdentity reports whether a and b describe the same unchanged inode, in
// the sense of git's index: a content hash recorded for a stays valid for b.
func SameIdentity(a, b *Entry) bool {
	return a.Type == b.Type && a.Size == b.Size && a.Mtime == b.Mtime &&
		a.Ctime == b.Ctime && a.Inode == b.Inode && a.Dev == b.Dev
}

// IsHardlinked reports whether e is one name of an object with more than
// one: any object but a directory, as rsync -H links them (symlinks, fifos,
// sockets and devices too). An entry without an inode number (a stream
// that did not carry it) cannot be grouped and is not.
func (e *Entry) IsHardlinked() bool {
	return e.Type != TypeDir && e.Nlink > 1 && (e.Inode != 0 || e.Dev != 0)
}

// FileMode converts the entry's type and mode to an fs.FileMode.
func (e *Entry) FileMode() fs.FileMode {
	m := fs.FileMode(e.Mode & 0o777)
	if e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch e.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeFifo:
		m |= fs.ModeNamedPipe
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// Compare orders paths by their components: "a/b" < "a.b" because the
// component "a" sorts before "a.b". A parent always sorts immediately before
// its descendants, which gives a depth-first pre-order of the tree.
func Compare(a, b string) int {
	if a == b {
		return 0
	}
	n := min(len(a), len(b))
	i := commonPrefix(a, b, n)
	if i < n {
		ca, cb := a[i], b[i]
		switch {
		case ca == '/':
			return -1
		case cb == '/':
			return 1
		case ca < cb:
			return -1
		}
		return 1
	}
	if len(a) < len(b) {
		return -1
	}
	return 1
}

// commonPrefix returns the length of the longest common prefix of a and b,
// both at least n bytes long, at most n: eight bytes per step, as sibling
// paths share long prefixes.
func commonPrefix(a, b string, n int) int {
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := load64(a, i) ^ load64(b, i); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// load64 reads s[i:i+8] as a little-endian word (the compiler makes it one load).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// IsAncestor reports whether dir is a proper ancestor of p. The root ("")
// is the ancestor of every other path (see relpath.IsAncestor; relpath.Within
// is the check that admits p == dir).
func IsAncestor(dir, p string) bool { return relpath.IsAncestor(dir, p) }

// Parent returns the parent path of p ("" for top-level names and the root).
func Parent(p string) string { return relpath.Parent(p) }

// MaxPathLen bounds the length of a relative path in bytes.
const MaxPathLen = relpath.MaxPathLen

// MaxNameLen bounds the length of one path component (NAME_MAX).
const MaxNameLen = relpath.MaxNameLen

// ValidPath reports whether p is a clean relative path: not absolute, no
// empty, "." or ".." components, no NUL bytes, bounded lengths. The root is
// the empty path (see relpath.Valid).
func ValidPath(p string) error { return relpath.Valid(p) }

// Equal reports whether two entries are identical in every field.
func Equal(a, b *Entry) bool {
	if a.Path != b.Path || a.Type != b.Type || a.Mode != b.Mode || a.UID != b.UID ||
		a.GID != b.GID || a.Size != b.Size || a.Mtime != b.Mtime || a.Ctime != b.Ctime ||
		a.Dev != b.Dev || a.Inode != b.Inode || a.Nlink != b.Nlink || a.Rdev != b.Rdev ||
		a.HasHash != b.HasHash || a.LinkTarget != b.LinkTarget || len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	if a.HasHash && a.Hash != b.Hash {
		return false
	}
	return XattrsEqual(a.Xattrs, b.Xattrs)
}

// XattrsEqual compares two xattr lists sorted by name.
func XattrsEqual(a, b []Xattr) bool { return xattr.Equal(a, b) }

// The POSIX ACLs of Linux are the extended attributes with these names
// (their values in the kernel's binary form, with numeric ids): the access
// ACL of any object but a symlink, and the default ACL of a directory.
// They ride in Entry.Xattrs like any other, but are told apart in what
// msync reports, as rsync's -A is told apart from its -X.
const (
	ACLAccess  = xattr.ACLAccess
	ACLDefault = xattr.ACLDefault
)

// IsACL reports whether the xattr name is one of the POSIX ACLs.
func IsACL(name string) bool { return xattr.IsACL(name) }

// XattrsDiffer compares two xattr lists sorted by name and says whether
// their ACLs (acl) and their other xattrs (xattr) differ.
func XattrsDiffer(a, b []Xattr) (xattr, acl bool) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var name string
		switch {
		case j == len(b) || i < len(a) && a[i].Name < b[j].Name:
			name = a[i].Name
			i++
		case i == len(a) || b[j].Name < a[i].Name:
			name = b[j].Name
			j++
		default:
			name = a[i].Name
			same := bytes.Equal(a[i].Value, b[j].Value)
			i++
			j++
			if same {
				continue
			}
		}
		if IsACL(name) {
			acl = true
		} else {
			xattr = true
		}
	}
	return xattr, acl
}

// HasXattr reports whether the list holds an xattr of that name.
func HasXattr(xs []Xattr, name string) bool {
	for _, x := range xs {
		if x.Name == name {
			return true
		}
	}
	return false
}
