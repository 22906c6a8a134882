package plan

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/msync/msync/internal/relpath"
	"github.com/msync/msync/sync/class"
)

// Proposal is a dataset Init found, with why.
type Proposal struct {
	Dataset
	Why string // what Init saw that made it choose the class
	rel string // its path below SRC
}

// maxDepth is how deep Init looks for recognised areas below SRC
// (/var/spool/exim4 under /var is two levels down).
const maxDepth = 3

// Init inspects the tree at src and proposes one dataset per recognised
// area (home directories, darcs repositories, mailman archives and queues,
// an exim spool) and one generic dataset for the rest. dest, if not empty,
// is where src goes; each dataset's dest is the same relative path under it.
func Init(src, dest string) ([]Proposal, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("plan init: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("plan init: %s is not a directory", src)
	}
	var found []Proposal
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		abs := filepath.Join(src, rel)
		if ps := recognise(abs, rel); len(ps) > 0 {
			found = append(found, ps...)
			return nil
		}
		if depth == maxDepth {
			return nil
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			return fmt.Errorf("plan init: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() {
				if err := walk(path.Join(rel, e.Name()), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("", 0); err != nil {
		return nil, err
	}
	// The rest of the tree, without the areas above.
	var claimed []string
	for _, p := range found {
		claimed = append(claimed, p.rel)
	}
	if restNeeded(claimed) {
		found = append(found, Proposal{Dataset: Dataset{Name: "rest", Class: string(class.Generic), Exclude: restExcludes(claimed)},
			Why: "everything else under the source, without the areas above"})
	}
	names := map[string]int{}
	for i := range found {
		p := &found[i]
		p.Source = join(src, p.rel)
		if dest != "" {
			p.Dest = join(dest, p.rel)
		}
		base := p.Name
		names[base]++
		if names[base] > 1 {
			p.Name = fmt.Sprintf("%s-%d", base, names[base])
		}
	}
	return found, nil
}

// restNeeded reports whether a dataset for the rest is wanted: always,
// unless SRC itself is one area; it also carries the metadata of SRC's
// root and of anything that appears at the top later.
func restNeeded(claimed []string) bool {
	for _, c := range claimed {
		if c == "" {
			return false
		}
	}
	return true
}

// restExcludes are anchored patterns for the outermost claimed areas.
func restExcludes(claimed []string) []string {
	var out []string
	for _, c := range claimed {
		inner := false
		for _, o := range claimed {
			if relpath.IsAncestor(o, c) {
				inner = true
			}
		}
		if !inner {
			out = append(out, "/"+c+"/")
		}
	}
	sort.Strings(out)
	return out
}

func join(base, rel string) string {
	if rel == "" {
		return base
	}
	return strings.TrimSuffix(base, "/") + "/" + rel
}

func dataset(rel, name string, c class.Name, why string) Proposal {
	if name == "" {
		name = path.Base(rel)
	}
	if rel == "" || name == "." || name == "/" {
		name = string(c)
	}
	name = sanitize(name)
	p := Proposal{Dataset: Dataset{Name: name, Class: string(c)}, Why: why}
	p.rel = rel
	return p
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, s)
	s = strings.TrimLeft(s, ".-_")
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		s = "data"
	}
	return s
}

// recognise returns the datasets the directory at abs is made of, if it is a
// recognised area.
func recognise(abs, rel string) []Proposal {
	has := func(p ...string) bool { return exists(filepath.Join(append([]string{abs}, p...)...)) }
	switch {
	case has("archives", "private") || has("qfiles") && has("lists"):
		// A mailman installation: archives and queues are classes of their
		// own; the rest (lists/*/config.pck, data) is a plain tree.
		var out []Proposal
		claimedHere := []string{}
		if has("archives") {
			out = append(out, dataset(path.Join(rel, "archives"), "mailman-archives", class.MailmanArchives,
				"archives/private/LIST.mbox/LIST.mbox files grow by appending"))
			claimedHere = append(claimedHere, "/archives/")
		}
		if has("qfiles") {
			q := dataset(path.Join(rel, "qfiles"), "mailman-qfiles", class.MailmanQfiles,
				"qfiles/ holds mailman's queues: files come and go between passes")
			q.MaxAge = "7d"
			out = append(out, q)
			claimedHere = append(claimedHere, "/qfiles/")
		}
		m := dataset(rel, "mailman", class.Generic, "the rest of the mailman installation (lists/*/config.pck, data/)")
		m.Exclude = claimedHere
		// The mailman dataset covers rel itself: the rest dataset leaves it out.
		return append(out, m)
	case has("input") && has("msglog"):
		return []Proposal{dataset(rel, "exim", class.EximSpool, "input/ and msglog/: an exim spool")}
	case has("_darcs"):
		return []Proposal{dataset(rel, "", class.Darcs, "_darcs/: a darcs repository")}
	case darcsRepos(abs) > 0:
		return []Proposal{dataset(rel, "", class.Darcs, fmt.Sprintf("%d darcs repositories (*/_darcs)", darcsRepos(abs)))}
	case path.Base(rel) == "home" || homeDirs(abs) >= 2:
		return []Proposal{dataset(rel, "home", class.Home, "home directories (dotfiles, Maildir/)")}
	}
	return nil
}

func darcsRepos(abs string) int {
	ents, err := os.ReadDir(abs)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() && exists(filepath.Join(abs, e.Name(), "_darcs")) {
			n++
		}
	}
	return n
}

func homeDirs(abs string) int {
	ents, err := os.ReadDir(abs)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(abs, e.Name())
		if exists(filepath.Join(d, "Maildir")) || exists(filepath.Join(d, ".profile")) || exists(filepath.Join(d, ".bashrc")) {
			n++
		}
	}
	return n
}

// Write writes a plan file for the proposals, with comments explaining
// each choice; the result reads back with Load.
func Write(w io.Writer, src string, ps []Proposal, stateDir string, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# msync plan: the datasets of one migration. Written by `msync plan init %s`\n", src)
	fmt.Fprintf(&b, "# on %s; edit it freely, msync reads it on every run.\n", now.Format("2006-01-02 15:04"))
	b.WriteString("#\n# Run: msync initial --plan FILE, then catchup --plan FILE as often as you like,\n")
	b.WriteString("# catchup --final --plan FILE with services stopped, verify --plan FILE,\n")
	b.WriteString("# status / estimate / report --plan FILE. --only NAME runs one dataset.\n\n")
	b.WriteString("version = 1\n")
	b.WriteString("# One state directory per dataset (manifests, pass history), relative to this file.\n")
	fmt.Fprintf(&b, "state_dir = %s\n", quote(stateDir))
	b.WriteString("# Datasets copied at the same time.\n")
	b.WriteString("parallel = 2\n")
	for _, p := range ps {
		for _, s := range []string{p.Source, p.Dest, p.Name} {
			if !utf8.ValidString(s) {
				return fmt.Errorf("plan init: %q is not UTF-8, which a plan file cannot hold; rename it or write the plan by hand", s)
			}
		}
		b.WriteString("\n[[dataset]]\n")
		fmt.Fprintf(&b, "# %s\n", p.Why)
		fmt.Fprintf(&b, "name = %s\n", quote(p.Name))
		fmt.Fprintf(&b, "# %s\n", p.ClassName().Describe())
		fmt.Fprintf(&b, "class = %s\n", quote(p.Class))
		fmt.Fprintf(&b, "source = %s\n", quote(p.Source))
		if p.Dest == "" {
			b.WriteString("# Where this dataset goes: a directory, host:path (msync over ssh) or msync://host/module/path.\n")
		}
		fmt.Fprintf(&b, "dest = %s\n", quote(p.Dest))
		if len(p.Exclude) > 0 {
			b.WriteString("# Left to the datasets that cover these paths.\n")
		}
		b.WriteString("exclude = [")
		for i, e := range p.Exclude {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(e))
		}
		b.WriteString("]\n")
		if p.MaxAge != "" {
			b.WriteString("# bad/ and shunt/ entries older than this stay behind (listed in each pass); \"\" copies them all.\n")
			fmt.Fprintf(&b, "max_age = %s\n", quote(p.MaxAge))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// quote writes a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
