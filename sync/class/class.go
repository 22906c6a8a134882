// Package class holds what msync knows about the kinds of data a server
// migration moves (see DESIGN.md, "Classes"): which files grow by appending,
// which are content-addressed and never change, which must be copied last or
// in pairs, which come and go as a matter of course. A dataset of a plan has
// one class; its Rules steer the engine's pass.
package class

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/msync/msync/manifest"
)

// Name is a class of dataset.
type Name string

// The classes.
const (
	Generic         Name = "generic"
	Home            Name = "home"
	MailmanArchives Name = "mailman-archives"
	MailmanQfiles   Name = "mailman-qfiles"
	Darcs           Name = "darcs"
	EximSpool       Name = "exim-spool"
)

// All lists the classes in the order plans describe them.
var All = []Name{Home, MailmanArchives, MailmanQfiles, Darcs, EximSpool, Generic}

// Parse checks a class name from a plan file.
func Parse(s string) (Name, error) {
	for _, n := range All {
		if string(n) == s {
			return n, nil
		}
	}
	names := make([]string, len(All))
	for i, n := range All {
		names[i] = string(n)
	}
	return "", fmt.Errorf("unknown class %q (want one of %s)", s, strings.Join(names, ", "))
}

// Describe says in one line what the class changes about a pass.
func (n Name) Describe() string {
	switch n {
	case Home:
		return "home directories: hard links, symlinks, xattrs and numeric owners copied as they are"
	case MailmanArchives:
		return "LIST.mbox files grow by appending: only the tail is sent once the old part is proven unchanged (a delta when bin/arch rewrote it)"
	case MailmanQfiles:
		return "queue files come and go: *.tmp and *.bak are skipped, vanishing files are normal, bad/ and shunt/ entries older than max_age are left behind and listed"
	case Darcs:
		return "_darcs/patches, inventories and pristine.hashed are content-addressed: copied once, never re-hashed or compared by content again; hashed_inventory and format are written after everything else of their repository"
	case EximSpool:
		return "input/ID-D and ID-H are one message: -H is written after its -D, half pairs wait for the final pass, queue counts of both sides are recorded"
	}
	return "a plain tree"
}

// Excludes are the patterns a class always adds to a dataset's filters.
func (n Name) Excludes() []string {
	if n == MailmanQfiles {
		return []string{"*.tmp", "*.bak"}
	}
	return nil
}

// Config is what a class's rules need to know of the pass.
type Config struct {
	Final  bool          // the downtime pass: copy everything as it is
	Now    time.Time     // "older than max_age" is measured from here
	MaxAge time.Duration // mailman-qfiles: bad/ and shunt/ entries older than this stay behind; 0 copies all
}

// Rules implements the engine's per-file questions for one class. The zero
// value (a generic tree) answers no to every question.
type Rules struct {
	name Name
	c    Config
}

// Rules returns the rules of class n for one pass.
func (n Name) Rules(c Config) *Rules {
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	return &Rules{name: n, c: c}
}

// Class names the class for pass records.
func (r *Rules) Class() string { return string(r.name) }

// Hold says why the source file s is left as it is at the destination this
// pass (neither copied nor deleted), or "" to copy it. prev and next are the
// paths before and after s in the source's manifest order ("" at the ends).
func (r *Rules) Hold(s *manifest.Entry, prev, next string) string {
	if s.Type != manifest.TypeFile {
		return ""
	}
	switch r.name {
	case MailmanQfiles:
		if r.c.MaxAge <= 0 {
			return ""
		}
		q := path.Base(path.Dir(s.Path))
		if q != "bad" && q != "shunt" {
			return ""
		}
		age := r.c.Now.Sub(time.Unix(0, s.Mtime))
		if age > r.c.MaxAge {
			return fmt.Sprintf("left behind: in %s/ for %s (max_age %s)", q, days(age), days(r.c.MaxAge))
		}
	case EximSpool:
		if r.c.Final {
			return ""
		}
		id, part, ok := eximPart(s.Path)
		if !ok {
			return ""
		}
		switch part {
		case 'D':
			if next != id+"-H" {
				return "half a queued message (no -H yet): left for a later pass"
			}
		case 'H':
			if prev != id+"-D" {
				return "half a queued message (no -D): left for a later pass"
			}
		}
	}
	return ""
}

// Immutable reports whether the file at p never changes once written
// (content-addressed): same name and size at the destination means same
// content, and it is never sent as a delta.
func (r *Rules) Immutable(p string) bool {
	if r.name != Darcs {
		return false
	}
	dir := path.Dir(p)
	switch path.Base(dir) {
	case "patches", "pristine.hashed", "inventories":
		return path.Base(path.Dir(dir)) == "_darcs"
	}
	return false
}

// Last reports whether the file at p must be written only after the other
// files of its directory are in place.
func (r *Rules) Last(p string) bool {
	switch r.name {
	case Darcs:
		b := path.Base(p)
		return (b == "hashed_inventory" || b == "format") && path.Base(path.Dir(p)) == "_darcs"
	case EximSpool:
		_, part, ok := eximPart(p)
		return ok && part == 'H'
	}
	return false
}

// Growing reports whether the file at p grows by appending: the append path
// is tried even between local trees.
func (r *Rules) Growing(p string) bool {
	return r.name == MailmanArchives && strings.HasSuffix(p, ".mbox")
}

// Transient reports whether the file at p may vanish during a pass as a
// matter of course (not an error).
func (r *Rules) Transient(p string) bool { return r.name == MailmanQfiles }

// Queued reports whether the path is one queued message (exim's -H file),
// counted on both sides after each pass.
func (r *Rules) Queued(p string) bool {
	if r.name != EximSpool {
		return false
	}
	_, part, ok := eximPart(p)
	return ok && part == 'H'
}

// eximPart splits ".../input/ID-D" into its full ID path and 'D' or 'H'.
func eximPart(p string) (id string, part byte, ok bool) {
	if len(p) < 3 || p[len(p)-2] != '-' || (p[len(p)-1] != 'D' && p[len(p)-1] != 'H') {
		return "", 0, false
	}
	dir := path.Dir(p)
	if path.Base(dir) != "input" && path.Base(path.Dir(dir)) != "input" {
		return "", 0, false // split_spool_directory puts messages in input/X/
	}
	base := path.Base(p)
	if len(base) < 16 || strings.Count(base, "-") < 3 {
		return "", 0, false
	}
	return p[:len(p)-2], p[len(p)-1], true
}

func days(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	return d.Round(time.Minute).String()
}

// ParseAge parses "7d", "36h" or "90m".
func ParseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var d int
		if _, err := fmt.Sscanf(n, "%d", &d); err != nil || d < 0 || fmt.Sprint(d) != n {
			return 0, fmt.Errorf("max_age %q: want a number of days like 7d, or a duration like 36h", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("max_age %q: want a number of days like 7d, or a duration like 36h", s)
	}
	return d, nil
}
