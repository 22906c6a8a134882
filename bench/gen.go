// Package bench generates realistic migration trees, mutates them like a
// day on a live community server, and measures msync against rsync.
package bench

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Base is the mtime every generated file starts from; mutations move
// forward from it by round, so runs are reproducible.
var Base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// GenStats counts what Gen or Mutate wrote.
type GenStats struct {
	Files, Dirs, Links int
	Bytes              int64
}

type gen struct {
	root string
	r    *rand.Rand
	text []byte
	st   GenStats
	when time.Time
	err  error
	tick int
}

func newGen(root string, seed uint64, round int) *gen {
	g := &gen{root: root, r: rand.New(rand.NewPCG(seed, uint64(round)*7919+1)), when: Base.Add(time.Duration(round) * 24 * time.Hour)}
	words := strings.Fields("the of and to in is that for it as with was on be by at this from have or an are not " +
		"list mailman archive message patch darcs repository server migration subscribe digest thread reply " +
		"haskell community project trac ticket build release version debian etch lenny exim spool queue")
	var b strings.Builder
	for b.Len() < 1<<20 {
		b.WriteString(words[g.r.IntN(len(words))])
		if g.r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	g.text = []byte(b.String())
	return g
}

// textOf returns n bytes of pseudo-text (cheap: a window of a fixed corpus).
func (g *gen) textOf(n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		off := g.r.IntN(len(g.text) - 1)
		m := min(n-len(out), len(g.text)-off)
		out = append(out, g.text[off:off+m]...)
	}
	return out
}

func (g *gen) binary(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := g.r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

func (g *gen) stamp(p string) {
	g.tick++
	t := g.when.Add(time.Duration(g.tick) * time.Second)
	if err := os.Chtimes(p, t, t); err != nil && g.err == nil {
		g.err = err
	}
}

func (g *gen) dir(rel string) string {
	p := filepath.Join(g.root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil && g.err == nil {
		g.err = err
	}
	return p
}

func (g *gen) file(rel string, data []byte, mode os.FileMode) {
	p := filepath.Join(g.root, rel)
	g.dir(filepath.Dir(rel))
	if err := os.WriteFile(p, data, mode); err != nil && g.err == nil {
		g.err = err
		return
	}
	os.Chmod(p, mode)
	g.stamp(p)
	g.st.Files++
	g.st.Bytes += int64(len(data))
}

func (g *gen) appendTo(rel string, data []byte) {
	p := filepath.Join(g.root, rel)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		if g.err == nil {
			g.err = err
		}
		return
	}
	f.Write(data)
	f.Close()
	g.stamp(p)
	g.st.Bytes += int64(len(data))
}

func (g *gen) symlink(target, rel string) {
	p := filepath.Join(g.root, rel)
	os.Remove(p)
	if err := os.Symlink(target, p); err != nil && g.err == nil {
		g.err = err
	}
	// The link's own mtime, deterministic like every other (not followed).
	g.tick++
	t := unix.NsecToTimespec(g.when.Add(time.Duration(g.tick) * time.Second).UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW); err != nil && g.err == nil {
		g.err = err
	}
	g.st.Links++
}

func hashName(g *gen, n int) string { return hex.EncodeToString(g.binary(n)) }

func scaled(scale float64, n int, atLeast int) int { return max(atLeast, int(float64(n)*scale+0.5)) }

// Gen builds a tree shaped like an old community server under dir:
// home directories with Maildirs, darcs repositories, mailman archives and
// queue files, and an exim spool. Scale 1.0 is on the order of 100k files
// and 1 GB; the same seed and scale give the same tree.
func Gen(dir string, seed uint64, scale float64) (GenStats, error) {
	g := newGen(dir, seed, 0)
	users := scaled(scale, 80, 2)
	for u := range users {
		home := fmt.Sprintf("home/user%03d", u)
		for _, dot := range []string{".bashrc", ".profile", ".forward", ".muttrc", ".ssh/authorized_keys"} {
			g.file(home+"/"+dot, g.textOf(200+g.r.IntN(2000)), 0o644)
		}
		os.Chmod(filepath.Join(dir, home, ".ssh"), 0o700)
		for i := range 400 {
			g.file(fmt.Sprintf("%s/Maildir/cur/%d.M%dP%d.oldhost:2,S", home, 1200000000+i*97, i, u), g.textOf(800+g.r.IntN(8000)), 0o600)
		}
		for i := range 10 {
			g.file(fmt.Sprintf("%s/Maildir/new/%d.M%dP%d.oldhost", home, 1300000000+i*31, i, u), g.textOf(500+g.r.IntN(4000)), 0o600)
		}
		g.dir(home + "/Maildir/tmp")
		for i := range 20 {
			g.file(fmt.Sprintf("%s/public_html/page%02d.html", home, i), g.textOf(1000+g.r.IntN(6000)), 0o644)
		}
		if u%5 == 0 {
			g.file(home+"/data/dump.tar", g.binary(1<<20+g.r.IntN(int(19*float64(1<<20)*min(scale*2, 1)))), 0o644)
		}
		g.symlink("public_html", filepath.Join(home, "www"))
		if u == 0 {
			g.symlink("/nonexistent/old-mount", filepath.Join(home, "dangling"))
		}
		notes := filepath.Join(home, "notes.txt")
		g.file(notes, g.textOf(3000), 0o644)
		os.Link(filepath.Join(dir, notes), filepath.Join(dir, home, "notes-link.txt"))
	}
	repos := scaled(scale, 40, 2)
	for r := range repos {
		base := fmt.Sprintf("projects/repo%02d", r)
		for range 500 {
			data := g.binary(200 + g.r.IntN(3000))
			g.file(fmt.Sprintf("%s/_darcs/patches/%010d-%s.gz", base, len(data), hashName(g, 32)), data, 0o644)
		}
		for range 300 {
			data := g.binary(100 + g.r.IntN(6000))
			g.file(fmt.Sprintf("%s/_darcs/pristine.hashed/%010d-%s", base, len(data), hashName(g, 32)), data, 0o644)
		}
		for i := range 20 {
			g.file(fmt.Sprintf("%s/_darcs/inventories/%010d-%s", base, i, hashName(g, 32)), g.textOf(2000), 0o644)
		}
		g.file(base+"/_darcs/hashed_inventory", g.textOf(5000), 0o644)
		g.file(base+"/_darcs/format", []byte("hashed\ndarcs-2\n"), 0o644)
		for i := range 300 {
			g.file(fmt.Sprintf("%s/src/Module%02d/File%03d.hs", base, i/10, i), g.textOf(500+g.r.IntN(10000)), 0o644)
		}
	}
	lists := scaled(scale, 30, 2)
	for l := range lists {
		name := fmt.Sprintf("list%02d", l)
		size := 1<<20 + g.r.IntN(int(float64(60<<20)*min(scale*3, 1)))
		g.file(fmt.Sprintf("mailman/archives/private/%s.mbox/%s.mbox", name, name), mbox(g, size), 0o664)
		for m := range 24 {
			month := fmt.Sprintf("mailman/archives/private/%s/%d-%s", name, 2005+m/12, time.Month(1+m%12))
			for i := range 70 {
				g.file(fmt.Sprintf("%s/%06d.html", month, m*70+i), g.textOf(1500+g.r.IntN(3000)), 0o664)
			}
			for _, idx := range []string{"date.html", "thread.html", "subject.html", "author.html"} {
				g.file(month+"/"+idx, g.textOf(4000), 0o664)
			}
		}
		g.dir("mailman/archives/public")
		g.symlink("../private/"+name, "mailman/archives/public/"+name)
		g.file(fmt.Sprintf("mailman/lists/%s/config.pck", name), g.binary(20000+g.r.IntN(40000)), 0o660)
	}
	qdirs := []string{"in", "out", "bad", "shunt", "virgin", "archive", "bounces", "commands", "news", "retry"}
	for i := range scaled(scale, 5000, 50) {
		q := qdirs[g.r.IntN(len(qdirs))]
		g.file(fmt.Sprintf("mailman/qfiles/%s/%d.%d+%s.pck", q, 1400000000+i, g.r.IntN(1000), hashName(g, 20)), g.binary(500+g.r.IntN(4000)), 0o660)
	}
	for i := range scaled(scale, 1000, 10) {
		id := eximID(g, i)
		g.file("exim/input/"+id+"-D", g.textOf(500+g.r.IntN(20000)), 0o640)
		g.file("exim/input/"+id+"-H", g.textOf(300+g.r.IntN(1500)), 0o640)
		g.file("exim/msglog/"+id, g.textOf(200), 0o640)
	}
	if err := chownTree(dir); err != nil {
		return g.st, err
	}
	return g.st, fixDirTimes(dir, g)
}

// chownTree gives the tree the fixed numeric owners of the services it
// imitates when running as root (users 1000+N, list 38, Debian-exim 101),
// so that owner copying is exercised; elsewhere it does nothing.
func chownTree(root string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		uid, gid := 0, 0
		parts := strings.Split(filepath.ToSlash(rel), "/")
		var n int
		switch {
		case parts[0] == "home" && len(parts) > 1:
			fmt.Sscanf(parts[1], "user%d", &n)
			uid, gid = 1000+n, 100
		case parts[0] == "projects" && len(parts) > 1:
			fmt.Sscanf(parts[1], "repo%d", &n)
			uid, gid = 2000+n, 2000+n
		case parts[0] == "mailman":
			uid, gid = 38, 38
		case parts[0] == "exim":
			uid, gid = 101, 103
		}
		return os.Lchown(p, uid, gid)
	})
}

func eximID(g *gen, i int) string {
	const chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := []byte("000000-000000-00")
	for _, k := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15} {
		b[k] = chars[g.r.IntN(len(chars))]
	}
	b[0] = chars[i%62]
	return string(b)
}

func mbox(g *gen, size int) []byte {
	var b []byte
	for n := 0; len(b) < size; n++ {
		b = append(b, mboxMessage(g, n)...)
	}
	return b
}

func mboxMessage(g *gen, n int) []byte {
	body := g.textOf(500 + g.r.IntN(5000))
	return fmt.Appendf(nil, "From user%d@example.org Mon Jan  1 00:00:%02d 2007\nFrom: user%d@example.org\nSubject: message %d\nMessage-ID: <%s@example.org>\n\n%s\n\n",
		n%100, n%60, n%100, n, hashName(g, 8), body)
}

// fixDirTimes gives every directory a deterministic mtime after its contents.
func fixDirTimes(root string, g *gen) error {
	if g.err != nil {
		return g.err
	}
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			g.st.Dirs++
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		g.stamp(d)
	}
	return g.err
}

// GenTiny makes n one-byte files, 1000 to a directory, for measuring memory
// per file on very large trees.
func GenTiny(dir string, n int) (GenStats, error) {
	var st GenStats
	b := []byte{'x'}
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, fmt.Sprintf("d%04d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return st, err
			}
			st.Dirs++
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%07d", i)), b, 0o644); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes++
	}
	return st, nil
}
