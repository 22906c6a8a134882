package manifest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/msync/msync/internal/relpath"
	"golang.org/x/sys/unix"
)

// WriteMtree writes it as a BSD mtree(5) specification in the hierarchical
// form ("dir" lines descend, ".." ascends) so that `mtree -f SPEC -p DIR`
// checks a tree against it with standard tools.
func WriteMtree(w io.Writer, it Iterator) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "#mtree v2.0\n# written by msync: type mode uid gid size time link\n")
	var stack []string // open directories below the root
	for {
		e, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if e.Path == "" {
			fmt.Fprintf(bw, ".%s\n", mtreeKeywords(e))
			continue
		}
		parent := Parent(e.Path)
		for len(stack) > 0 && stack[len(stack)-1] != parent {
			stack = stack[:len(stack)-1]
			fmt.Fprintf(bw, "%s..\n", strings.Repeat("    ", len(stack)+1))
		}
		name := e.Path[len(parent):]
		name = strings.TrimPrefix(name, "/")
		fmt.Fprintf(bw, "%s%s%s\n", strings.Repeat("    ", len(stack)+1), mtreeVis(name), mtreeKeywords(e))
		if e.Type == TypeDir {
			stack = append(stack, e.Path)
		}
	}
	for len(stack) > 0 {
		stack = stack[:len(stack)-1]
		fmt.Fprintf(bw, "%s..\n", strings.Repeat("    ", len(stack)+1))
	}
	return bw.Flush()
}

func mtreeKeywords(e *Entry) string {
	var b strings.Builder
	t := map[Type]string{TypeFile: "file", TypeDir: "dir", TypeSymlink: "link", TypeFifo: "fifo",
		TypeChar: "char", TypeBlock: "block", TypeSocket: "socket"}[e.Type]
	fmt.Fprintf(&b, " type=%s", t)
	if e.Type != TypeSymlink {
		fmt.Fprintf(&b, " mode=%#o", e.Mode)
	}
	fmt.Fprintf(&b, " uid=%d gid=%d", e.UID, e.GID)
	if e.Type == TypeFile {
		fmt.Fprintf(&b, " size=%d", e.Size)
	}
	fmt.Fprintf(&b, " time=%d.%09d", floorDiv(e.Mtime, 1e9), floorMod(e.Mtime, 1e9))
	if e.Type == TypeSymlink {
		fmt.Fprintf(&b, " link=%s", mtreeVis(e.LinkTarget))
	}
	if e.Type == TypeChar || e.Type == TypeBlock {
		fmt.Fprintf(&b, " device=native,%d,%d", unix.Major(e.Rdev), unix.Minor(e.Rdev))
	}
	return b.String()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// mtreeVis encodes a name the way mtree's strsvis(VIS_OCTAL|VIS_WHITE) does:
// every byte that is not printable ASCII, white space and the characters
// mtree treats specially become \ooo.
func mtreeVis(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\\#*?[]{}=", c) >= 0 {
			fmt.Fprintf(&b, "\\%03o", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

type jsonEntry struct {
	Path       string            `json:"path"`
	PathB64    string            `json:"path_b64,omitempty"`
	Type       string            `json:"type"`
	Mode       string            `json:"mode"`
	UID        uint32            `json:"uid"`
	GID        uint32            `json:"gid"`
	Size       int64             `json:"size"`
	Mtime      int64             `json:"mtime_ns"`
	Nlink      uint32            `json:"nlink,omitempty"`
	Inode      uint64            `json:"inode"`
	Hash       string            `json:"xxh64,omitempty"`
	LinkTarget string            `json:"target,omitempty"`
	Rdev       uint64            `json:"rdev,omitempty"`
	Xattrs     map[string]string `json:"xattrs_b64,omitempty"`
}

// WriteJSON writes one JSON object per entry and line. Paths that are not
// valid UTF-8 are also given base64-encoded in path_b64.
func WriteJSON(w io.Writer, it Iterator) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for {
		e, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		j := jsonEntry{Path: e.Path, Type: e.Type.String(), Mode: fmt.Sprintf("%04o", e.Mode), UID: e.UID,
			GID: e.GID, Size: e.Size, Mtime: e.Mtime, Inode: e.Inode, LinkTarget: e.LinkTarget, Rdev: e.Rdev}
		if e.Nlink > 1 {
			j.Nlink = e.Nlink
		}
		if !utf8.ValidString(e.Path) {
			j.PathB64 = base64.StdEncoding.EncodeToString([]byte(e.Path))
		}
		if e.HasHash {
			j.Hash = fmt.Sprintf("%016x", e.Hash)
		}
		if len(e.Xattrs) > 0 {
			j.Xattrs = map[string]string{}
			for _, x := range e.Xattrs {
				j.Xattrs[x.Name] = base64.StdEncoding.EncodeToString(x.Value)
			}
		}
		if err := enc.Encode(&j); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// EscapeLines is Escape for a message of several lines (an error's text,
// which names paths): each line is escaped, the newlines kept (see
// relpath.EscapeLines).
func EscapeLines(s string) string { return relpath.EscapeLines(s) }

// Escape makes a path safe for line-oriented output the way rsync prints
// names: control characters other than tab, DEL, and bytes that are not
// valid UTF-8 become \#ooo (octal); everything else is kept (see
// relpath.Escape).
func Escape(s string) string { return relpath.Escape(s) }
