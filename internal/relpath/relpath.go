// Package relpath holds the pure rules for the slash-separated paths msync
// names files by: what a valid relative path is, which path lies inside
// which, and how a name is printed safely. It imports only the standard
// library, so the lowest packages (manifest, internal/fsx, internal/netx)
// can share one definition; manifest re-exports what its callers use.
package relpath

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathLen bounds the length of a relative path in bytes.
const MaxPathLen = 32 << 10

// MaxNameLen bounds the length of one path component (NAME_MAX).
const MaxNameLen = 255

// Valid reports whether p is a clean relative path: not absolute, no
// empty, "." or ".." components, no NUL bytes, bounded lengths. The root is
// the empty path.
func Valid(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > MaxPathLen {
		return fmt.Errorf("path of %d bytes exceeds %d", len(p), MaxPathLen)
	}
	if p[0] == '/' {
		return fmt.Errorf("absolute path %q", p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %q contains a NUL byte", p)
	}
	for c := range strings.SplitSeq(p, "/") {
		switch {
		case c == "":
			return fmt.Errorf("path %q has an empty component", p)
		case c == "." || c == "..":
			return fmt.Errorf("path %q has a %q component", p, c)
		case len(c) > MaxNameLen:
			return fmt.Errorf("path %q has a component longer than %d bytes", p, MaxNameLen)
		}
	}
	return nil
}

// IsAncestor reports whether dir is a proper ancestor of p. The root ("")
// is the ancestor of every other path.
func IsAncestor(dir, p string) bool {
	if dir == "" {
		return p != ""
	}
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

// Within is msync's one answer to "is this path inside that root" by
// name: it reports whether p is root itself or lies beneath it, comparing
// whole components ("a/bc" is not within "a/b"). It serves both kinds of
// path msync handles, as long as both arguments are of the same kind and
// clean: relative manifest paths, where the root is "", and absolute host
// paths (filepath.Clean'ed), where the root is "/". It reads no file
// system: a check that must see through symlinks or bind mounts resolves
// them first (fsx.Within compares by identity), and a daemon never relies
// on it to confine a client; it opens beneath a descriptor (fsx.Root).
func Within(p, root string) bool {
	if p == root || root == "/" && strings.HasPrefix(p, "/") {
		return true
	}
	return IsAncestor(root, p)
}

// Parent returns the parent path of p ("" for top-level names and the root).
func Parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

// EscapeLines is Escape for a message of several lines (an error's text,
// which names paths): each line is escaped, the newlines between them
// kept. A newline inside a name there still breaks the line, but no
// control sequence reaches the terminal.
func EscapeLines(s string) string {
	if !strings.Contains(s, "\n") {
		return Escape(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(l)
	}
	return strings.Join(lines, "\n")
}

// Escape makes a path safe for line-oriented output the way rsync prints
// names: control characters other than tab, DEL, and bytes that are not
// valid UTF-8 become \#ooo (octal); everything else is kept.
func Escape(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r < 0x20 && r != '\t', r == 0x7f:
			fmt.Fprintf(&b, "\\#%03o", s[i])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
