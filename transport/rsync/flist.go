package rsync

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/msync/msync/manifest"
)

// File-list entry flags of protocol 27 (rsync's XMIT_*).
const (
	xmitTopDir   = 1 << 0
	xmitSameMode = 1 << 1
	xmitSameRdev = 1 << 2
	xmitSameUID  = 1 << 3
	xmitSameGID  = 1 << 4
	xmitSameName = 1 << 5
	xmitLongName = 1 << 6
	xmitSameTime = 1 << 7
	sIFMT        = 0o170000
	sIFREG       = 0o100000
	sIFDIR       = 0o040000
	sIFLNK       = 0o120000
	sIFIFO       = 0o010000
	sIFSOCK      = 0o140000
	sIFCHR       = 0o020000
	sIFBLK       = 0o060000
	permBits     = 0o7777
)

// file is one entry of an rsync file list, as the wire carries it.
type file struct {
	name     string // cleaned, relative to the transfer root; "" is the root
	wire     string // as sent, which is what rsync sorts by
	size     int64
	mtime    int64 // seconds
	mode     uint32
	uid, gid uint32
	rdev     uint32
	link     string
	dev, ino int64
	idev     bool   // dev and ino were sent (a regular file under -H)
	sum      []byte // MD4 of a regular file's content, under -c
}

// listOptions say which fields a file list carries: rsync's -o, -g, -l,
// -D and -H change the encoding of every entry.
type listOptions struct {
	uid, gid, links, devices, hardLinks bool
	checksum                            bool // -c: every entry carries 16 bytes, a file's MD4
	idLists                             int  // name lists after the list (-o/-g without --numeric-ids)

	// maxBytes bounds the memory a received list may take (see
	// listBudget); 0 means DefaultFileListBytes.
	maxBytes int64
}

// allFields is the list msync asks a stock sender for (-lHogDtpr --numeric-ids).
var allFields = listOptions{uid: true, gid: true, links: true, devices: true, hardLinks: true}

// flistReader decodes a protocol 27 file list.
type flistReader struct {
	d    *decoder
	o    listOptions
	last file
}

// next returns the next entry, or io.EOF at the list's end marker.
func (fr *flistReader) next() (*file, error) {
	flags, err := fr.d.byte()
	if err != nil {
		return nil, err
	}
	if flags == 0 {
		return nil, io.EOF
	}
	name, err := fr.name(flags)
	if err != nil {
		return nil, err
	}
	f := &file{}
	if err := fr.attrs(f, flags, name); err != nil {
		return nil, err
	}
	if err := fr.typed(f, flags, name); err != nil {
		return nil, err
	}
	// The next entry's name shares a prefix with this one as sent, before
	// it is cleaned.
	fr.last = *f
	fr.last.name = name
	f.wire = name
	if f.name, err = cleanName(name); err != nil {
		return nil, err
	}
	return f, nil
}

// name reads an entry's name as sent: the bytes it shares with the
// previous name, then its own, bounded.
func (fr *flistReader) name(flags byte) (string, error) {
	l1 := 0
	if flags&xmitSameName != 0 {
		b, err := fr.d.byte()
		if err != nil {
			return "", err
		}
		l1 = int(b)
	}
	var l2 int
	if flags&xmitLongName != 0 {
		n, err := fr.d.int32()
		if err != nil {
			return "", err
		}
		l2 = int(n)
	} else {
		b, err := fr.d.byte()
		if err != nil {
			return "", err
		}
		l2 = int(b)
	}
	if l1 > len(fr.last.name) || l2 < 0 || l1+l2 > maxPath || l1+l2 == 0 {
		return "", protoErr("file-list name of %d+%d bytes (previous name %d bytes)", l1, l2, len(fr.last.name))
	}
	tail, err := fr.d.bytes(l2)
	if err != nil {
		return "", err
	}
	return fr.last.name[:l1] + string(tail), nil
}

// same reads a 32-bit field, or keeps prev when the entry's flags say it
// is the previous entry's.
func (fr *flistReader) same(flags, flag byte, prev uint32) (uint32, error) {
	if flags&flag != 0 {
		return prev, nil
	}
	v, err := fr.d.int32()
	return uint32(v), err
}

// attrs reads what every entry carries: size, mtime, mode, and the owner
// and group the list's options include.
func (fr *flistReader) attrs(f *file, flags byte, name string) error {
	var err error
	if f.size, err = fr.d.longint(); err != nil {
		return err
	}
	if f.size < 0 {
		return protoErr("%q: negative length %d", name, f.size)
	}
	// rsync 2.x and 3.x send time_t as 32 bits here.
	mtime, err := fr.same(flags, xmitSameTime, uint32(fr.last.mtime))
	if err != nil {
		return err
	}
	f.mtime = int64(mtime)
	if f.mode, err = fr.same(flags, xmitSameMode, fr.last.mode); err != nil {
		return err
	}
	if fr.o.uid {
		if f.uid, err = fr.same(flags, xmitSameUID, fr.last.uid); err != nil {
			return err
		}
	}
	if fr.o.gid {
		if f.gid, err = fr.same(flags, xmitSameGID, fr.last.gid); err != nil {
			return err
		}
	}
	return nil
}

// typed reads what an entry's type adds (a device number, a symlink's
// target, a regular file's device and inode under -H) and its checksum
// under -c; a type the list's options exclude is refused.
func (fr *flistReader) typed(f *file, flags byte, name string) error {
	var err error
	switch f.mode & sIFMT {
	case sIFCHR, sIFBLK, sIFIFO, sIFSOCK:
		if !fr.o.devices {
			return protoErr("%q: a device or special file without -D", name)
		}
		if f.rdev, err = fr.same(flags, xmitSameRdev, fr.last.rdev); err != nil {
			return err
		}
	case sIFLNK:
		if !fr.o.links {
			return protoErr("%q: a symlink without -l", name)
		}
		n, err := fr.d.int32()
		if err != nil {
			return err
		}
		if n <= 0 || n > maxPath {
			return protoErr("%q: symlink target of %d bytes", name, n)
		}
		b, err := fr.d.bytes(int(n))
		if err != nil {
			return err
		}
		f.link = string(b)
	case sIFREG, sIFDIR:
	default:
		return protoErr("%q: unknown file type in mode %#o", name, f.mode)
	}
	if f.mode&sIFMT == sIFREG && fr.o.hardLinks {
		if f.dev, err = fr.d.longint(); err != nil {
			return err
		}
		if f.ino, err = fr.d.longint(); err != nil {
			return err
		}
		f.idev = true
	}
	if fr.o.checksum {
		// Protocol 27 sends the sum with every entry (zeros but for files).
		if f.sum, err = fr.d.bytes(md4Size); err != nil {
			return err
		}
	}
	return nil
}

// cleanName turns a sender's name into a manifest path ("" for the root)
// or refuses it: absolute names and ".." never leave the tree.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", protoErr("absolute name %q in the file list", name)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", protoErr("name with a NUL byte in the file list")
	}
	if asIs(name) {
		return name, nil
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", protoErr("name %q with \"..\" in the file list", name)
		}
		out = append(out, p)
	}
	return strings.Join(out, "/"), nil
}

// asIs reports whether cleaning leaves name unchanged: no empty, "." or
// ".." part.
func asIs(name string) bool {
	for len(name) > 0 {
		part, rest, more := strings.Cut(name, "/")
		if part == "" || part == "." || part == ".." || (more && rest == "") {
			return false
		}
		name = rest
	}
	return true
}

// entry converts f to a manifest entry; links counts the entries that share
// f's device and inode.
func (f *file) entry(links map[[2]int64]uint32) (*manifest.Entry, error) {
	e := &manifest.Entry{Path: f.name, Mode: f.mode & permBits, UID: f.uid, GID: f.gid,
		Size: f.size, Mtime: f.mtime * 1e9, Nlink: 1}
	switch f.mode & sIFMT {
	case sIFREG:
		e.Type = manifest.TypeFile
		if f.sum != nil {
			e.Hash, e.HasHash = SumHash(f.sum), true
		}
		if f.idev {
			e.Dev, e.Inode = uint64(f.dev), uint64(f.ino)
			e.Nlink = links[[2]int64{f.dev, f.ino}]
		}
	case sIFDIR:
		e.Type, e.Size = manifest.TypeDir, 0
	case sIFLNK:
		e.Type, e.LinkTarget, e.Size = manifest.TypeSymlink, f.link, int64(len(f.link))
	case sIFIFO:
		e.Type, e.Size = manifest.TypeFifo, 0
	case sIFSOCK:
		e.Type, e.Size = manifest.TypeSocket, 0
	case sIFCHR:
		e.Type, e.Size, e.Rdev = manifest.TypeChar, 0, uint64(f.rdev)
	case sIFBLK:
		e.Type, e.Size, e.Rdev = manifest.TypeBlock, 0, uint64(f.rdev)
	}
	if e.Path == "" && e.Type != manifest.TypeDir {
		return nil, fmt.Errorf("the rsync source is a single file, not a directory (add a trailing slash or name a directory)")
	}
	return e, nil
}

// fileList is a received file list: files in rsync's order (the order its
// indexes count in) and the manifest entries in manifest order.
type fileList struct {
	files   []*file
	entries []*manifest.Entry
	index   map[string]int32 // manifest path of a regular file -> rsync index
}

// readFileList reads a whole file list with o's fields, sorts it as the
// sender does (protocol 27 compares whole names bytewise) and builds the
// scan; then the name lists and the I/O error flag that follow it.
//
// root stands in for the top directory when the list has none (a client
// pushing "dir" without a trailing slash sends "dir" and what is below).
func readFileList(d *decoder, o listOptions, root *manifest.Entry) (*fileList, int32, error) {
	fr := &flistReader{d: d, o: o}
	var files []*file
	budget := newListBudget(o.maxBytes)
	for {
		f, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("the connection ended inside the file list: %w", err)
			}
			return nil, 0, err
		}
		if len(files) >= maxEntries {
			return nil, 0, protoErr("more than %d entries in the file list", maxEntries)
		}
		if err := budget.add(f); err != nil {
			return nil, 0, err
		}
		files = append(files, f)
	}
	// Protocol 27's f_name_cmp orders whole names as sent, bytewise.
	slices.SortStableFunc(files, func(a, b *file) int { return strings.Compare(a.wire, b.wire) })
	n, asSent := 0, true
	for _, f := range files {
		if f.idev {
			n++
		}
		asSent = asSent && (f.name == f.wire || f.wire == ".")
	}
	links := make(map[[2]int64]uint32, n)
	for _, f := range files {
		if f.idev {
			links[[2]int64{f.dev, f.ino}]++
		}
	}
	fl := &fileList{files: files, index: make(map[string]int32, len(files)), entries: make([]*manifest.Entry, 0, len(files)+1)}
	// rsync drops later duplicates; they keep their index slot. Names
	// that cleaning left as sent repeat next to each other.
	var seen map[string]bool
	if !asSent {
		seen = make(map[string]bool, len(files))
	}
	for i, f := range files {
		if seen != nil {
			if seen[f.name] {
				continue
			}
			seen[f.name] = true
		} else if i > 0 && files[i-1].name == f.name {
			continue
		}
		e, err := f.entry(links)
		if err != nil {
			return nil, 0, err
		}
		fl.entries = append(fl.entries, e)
		if e.Type == manifest.TypeFile {
			fl.index[e.Path] = int32(i)
		}
	}
	slices.SortFunc(fl.entries, func(a, b *manifest.Entry) int { return manifest.Compare(a.Path, b.Path) })
	if (len(fl.entries) == 0 || fl.entries[0].Path != "") && root != nil {
		fl.entries = append([]*manifest.Entry{root}, fl.entries...)
	}
	if len(fl.entries) == 0 || fl.entries[0].Path != "" {
		return nil, 0, fmt.Errorf("the rsync source sent no top directory")
	}
	// One rule for every scan a peer sends: a tree, nothing beneath a
	// symlink or a file (an initial pass and a catch-up alike).
	var tc manifest.TreeCheck
	for _, e := range fl.entries {
		if err := tc.Add(e); err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
	}
	for range o.idLists {
		if err := skipIDList(d); err != nil {
			return nil, 0, err
		}
	}
	ioError, err := d.int32()
	if err != nil {
		return nil, 0, err
	}
	return fl, ioError, nil
}

// md4Size is the length of rsync's MD4 sums.
const md4Size = 16

// SumHash is how a 16-byte MD4 is kept in a manifest entry's Hash in a
// verification against rsync: its first 8 bytes, little-endian.
func SumHash(sum []byte) uint64 {
	var h uint64
	for i := 7; i >= 0; i-- {
		h = h<<8 | uint64(sum[i])
	}
	return h
}
