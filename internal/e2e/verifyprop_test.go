package e2e

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"golang.org/x/sys/unix"
)

// objects lists one side's tree by kind, for picking a mutation's target.
type objects struct {
	root                               string
	files, dirs, links, fifos, sockets []string // relative; dirs has "" (the root)
	devices, hardlinked, all           []string
}

func listObjects(t *testing.T, root string) *objects {
	t.Helper()
	o := &objects{root: root}
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = ""
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if rel != "" {
			o.all = append(o.all, rel)
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			o.hardlinked = append(o.hardlinked, rel)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			o.files = append(o.files, rel)
		case unix.S_IFDIR:
			o.dirs = append(o.dirs, rel)
		case unix.S_IFLNK:
			o.links = append(o.links, rel)
		case unix.S_IFIFO:
			o.fifos = append(o.fifos, rel)
		case unix.S_IFSOCK:
			o.sockets = append(o.sockets, rel)
		case unix.S_IFCHR, unix.S_IFBLK:
			o.devices = append(o.devices, rel)
		}
		return nil
	}))
	return o
}

func pick(r *rand.Rand, lists ...[]string) (string, bool) {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return "", false
	}
	return all[r.IntN(len(all))], true
}

// keepParentTimes runs fn, which adds or removes a name in the directory
// of rel, and puts the directory's mtime back: the mutation stays one.
func keepParentTimes(t *testing.T, root, rel string, fn func()) {
	t.Helper()
	parent := filepath.Dir(filepath.Join(root, rel))
	var st unix.Stat_t
	must(t, unix.Lstat(parent, &st))
	fn()
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, parent, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW))
}

// The POSIX ACLs as xattrs (spelled out here, not taken from msync).
const (
	aclAccess  = "system.posix_acl_access"
	aclDefault = "system.posix_acl_default"
)

// allXattrs are the namespaces a copy of an object takes along.
var allXattrs = []string{"user.", "trusted.", "security.", aclAccess, aclDefault}

// cloneMeta gives the object at dst the mode, owner, xattrs, ACLs and mtime
// of st (the stat of the object it replaces) and xs.
func cloneMeta(t *testing.T, dst string, st *unix.Stat_t, xs []manifest.Xattr) {
	t.Helper()
	if isRoot() {
		must(t, os.Lchown(dst, int(st.Uid), int(st.Gid)))
	}
	var now unix.Stat_t
	must(t, unix.Lstat(dst, &now))
	if now.Mode&unix.S_IFMT != unix.S_IFLNK {
		must(t, unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0))
	}
	for _, x := range xs {
		must(t, unix.Lsetxattr(dst, x.Name, x.Value, 0))
	}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW))
}

// A mutation changes one attribute of one object at one side and says what
// it did; false when the side has nothing it applies to.
type mutation struct {
	name  string
	apply func(t *testing.T, r *rand.Rand, o *objects) (string, bool)
}

func mutations() []mutation {
	abs := func(o *objects, rel string) string { return filepath.Join(o.root, rel) }
	return []mutation{
		{"content, same size and mtime", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			var sized []string
			for _, f := range o.files {
				if fi, err := os.Lstat(abs(o, f)); err == nil && fi.Size() > 0 {
					sized = append(sized, f)
				}
			}
			p, ok := pick(r, sized)
			if ok {
				flipByteKeepTimes(t, abs(o, p))
			}
			return p, ok
		}},
		{"size", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.files)
			if ok {
				f, err := os.OpenFile(abs(o, p), os.O_APPEND|os.O_WRONLY, 0)
				must(t, err)
				f.WriteString("+")
				f.Close()
			}
			return p, ok
		}},
		{"mode", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.files, o.dirs, o.fifos, o.sockets, o.devices)
			if ok {
				var st unix.Stat_t
				must(t, unix.Lstat(abs(o, p), &st))
				bits := uint32(0o7077) // the owner keeps rwx: the trees stay readable
				bit := uint32(1) << r.IntN(12)
				for bit&bits == 0 {
					bit = uint32(1) << r.IntN(12)
				}
				must(t, unix.Fchmodat(unix.AT_FDCWD, abs(o, p), (st.Mode&0o7777)^bit, 0))
			}
			return p, ok
		}},
		{"owner", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			if !isRoot() {
				return "", false
			}
			p, ok := pick(r, o.files, o.dirs, o.links, o.fifos, o.sockets, o.devices)
			if ok {
				var st unix.Stat_t
				must(t, unix.Lstat(abs(o, p), &st))
				uid, gid := int(st.Uid), int(st.Gid)
				if r.IntN(2) == 0 {
					uid++
				} else {
					gid++
				}
				must(t, os.Lchown(abs(o, p), uid, gid))
			}
			return p, ok
		}},
		{"mtime, whole seconds", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.files, o.dirs, o.links, o.fifos, o.sockets, o.devices)
			if ok {
				var st unix.Stat_t
				must(t, unix.Lstat(abs(o, p), &st))
				m := st.Mtim
				m.Sec += int64(1 + r.IntN(100000))
				must(t, unix.UtimesNanoAt(unix.AT_FDCWD, abs(o, p), []unix.Timespec{st.Atim, m}, unix.AT_SYMLINK_NOFOLLOW))
			}
			return p, ok
		}},
		{"mtime, under a second", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.files, o.dirs, o.links, o.fifos, o.sockets, o.devices)
			if ok {
				var st unix.Stat_t
				must(t, unix.Lstat(abs(o, p), &st))
				m := st.Mtim
				m.Nsec = (m.Nsec + 1 + int64(r.IntN(1e8))) % 1e9
				must(t, unix.UtimesNanoAt(unix.AT_FDCWD, abs(o, p), []unix.Timespec{st.Atim, m}, unix.AT_SYMLINK_NOFOLLOW))
			}
			return p, ok
		}},
		{"xattr", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			lists := [][]string{o.files, o.dirs}
			if isRoot() {
				lists = append(lists, o.links, o.fifos, o.sockets, o.devices)
			}
			p, ok := pick(r, lists...)
			if !ok {
				return "", false
			}
			ns := "user."
			if isRoot() && r.IntN(2) == 0 {
				ns = "trusted."
			}
			var st unix.Stat_t
			must(t, unix.Lstat(abs(o, p), &st))
			if st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				ns = "trusted."
			}
			xs, err := fsx.ListXattrs(abs(o, p), []string{ns})
			must(t, err)
			switch {
			case len(xs) > 0 && r.IntN(2) == 0:
				x := xs[r.IntN(len(xs))]
				must(t, unix.Lremovexattr(abs(o, p), x.Name))
				return p + ": removed " + x.Name, true
			case len(xs) > 0 && r.IntN(2) == 0:
				x := xs[r.IntN(len(xs))]
				must(t, unix.Lsetxattr(abs(o, p), x.Name, append(x.Value, 'x'), 0))
				return p + ": changed " + x.Name, true
			}
			name := ns + "prop" + strconv.Itoa(r.IntN(3))
			must(t, unix.Lsetxattr(abs(o, p), name, []byte(strconv.Itoa(r.IntN(1000))), 0))
			return p + ": set " + name, true
		}},
		{"access ACL", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.files, o.dirs, o.fifos, o.sockets, o.devices)
			if !ok {
				return "", false
			}
			_, err := unix.Lgetxattr(abs(o, p), aclAccess, nil)
			if err == nil && r.IntN(2) == 0 {
				setfacl(t, "-b", abs(o, p))
				return p + ": removed", true
			}
			entry := fmt.Sprintf("u:%d:rw", 100+r.IntN(5))
			if r.IntN(2) == 0 {
				entry = fmt.Sprintf("g:%d:r", 100+r.IntN(5))
			}
			setfacl(t, "-m", entry, abs(o, p))
			return p + ": " + entry, true
		}},
		{"default ACL", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.dirs)
			if !ok {
				return "", false
			}
			_, err := unix.Lgetxattr(abs(o, p), aclDefault, nil)
			if err == nil && r.IntN(2) == 0 {
				setfacl(t, "-k", abs(o, p))
				return p + ": removed", true
			}
			entry := fmt.Sprintf("u:%d:rx", 100+r.IntN(5))
			setfacl(t, "-d", "-m", entry, abs(o, p))
			return p + ": " + entry, true
		}},
		{"symlink target", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.links)
			if ok {
				var st unix.Stat_t
				must(t, unix.Lstat(abs(o, p), &st))
				old, err := os.Readlink(abs(o, p))
				must(t, err)
				keepParentTimes(t, o.root, p, func() {
					must(t, os.Remove(abs(o, p)))
					must(t, os.Symlink(old+"x", abs(o, p)))
				})
				cloneMeta(t, abs(o, p), &st, nil)
			}
			return p, ok
		}},
		{"type", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			// Every object but a directory becomes another kind, with the
			// same mode, owner and mtime.
			p, ok := pick(r, o.files, o.links, o.fifos, o.sockets, o.devices)
			if !ok {
				return "", false
			}
			var st unix.Stat_t
			must(t, unix.Lstat(abs(o, p), &st))
			kinds := []uint32{unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK}
			if isRoot() {
				kinds = append(kinds, unix.S_IFCHR, unix.S_IFBLK)
			}
			k := kinds[r.IntN(len(kinds))]
			for k == st.Mode&unix.S_IFMT {
				k = kinds[r.IntN(len(kinds))]
			}
			keepParentTimes(t, o.root, p, func() {
				must(t, os.Remove(abs(o, p)))
				if k == unix.S_IFREG {
					must(t, os.WriteFile(abs(o, p), nil, 0o600))
				} else {
					must(t, unix.Mknod(abs(o, p), k|0o600, int(unix.Mkdev(1, 3))))
				}
			})
			cloneMeta(t, abs(o, p), &st, nil)
			return fmt.Sprintf("%s: %o -> %o", p, st.Mode&unix.S_IFMT, k), true
		}},
		{"device number", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.devices)
			if ok {
				var st unix.Stat_t
				must(t, unix.Lstat(abs(o, p), &st))
				keepParentTimes(t, o.root, p, func() {
					must(t, os.Remove(abs(o, p)))
					must(t, unix.Mknod(abs(o, p), st.Mode, int(unix.Mkdev(unix.Major(st.Rdev), unix.Minor(st.Rdev)+1))))
				})
				cloneMeta(t, abs(o, p), &st, nil)
			}
			return p, ok
		}},
		{"hard link split", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			// A name of a hard-linked object of any kind becomes an
			// object of its own, alike in all else.
			p, ok := pick(r, o.hardlinked)
			if ok {
				var st unix.Stat_t
				must(t, unix.Lstat(abs(o, p), &st))
				xs, err := fsx.ListXattrs(abs(o, p), allXattrs)
				must(t, err)
				var remake func()
				switch st.Mode & unix.S_IFMT {
				case unix.S_IFREG:
					b, err := os.ReadFile(abs(o, p))
					must(t, err)
					remake = func() { must(t, os.WriteFile(abs(o, p), b, 0o600)) }
				case unix.S_IFLNK:
					to, err := os.Readlink(abs(o, p))
					must(t, err)
					remake = func() { must(t, os.Symlink(to, abs(o, p))) }
				default:
					remake = func() { must(t, unix.Mknod(abs(o, p), st.Mode&unix.S_IFMT|0o600, int(st.Rdev))) }
				}
				keepParentTimes(t, o.root, p, func() {
					must(t, os.Remove(abs(o, p)))
					remake()
				})
				cloneMeta(t, abs(o, p), &st, xs)
			}
			return p, ok
		}},
		{"hard link join", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			// Two alike names of a kind, apart, become one object.
			var pairs [][2]string
			for _, pr := range [][2]string{{"twins/one", "twins/two"}, {"stwins/l1", "stwins/l2"}, {"stwins/p1", "stwins/p2"}} {
				var sa, sb unix.Stat_t
				if unix.Lstat(abs(o, pr[0]), &sa) == nil && unix.Lstat(abs(o, pr[1]), &sb) == nil && sa.Ino != sb.Ino {
					pairs = append(pairs, pr)
				}
			}
			if len(pairs) == 0 {
				return "", false
			}
			pr := pairs[r.IntN(len(pairs))]
			keepParentTimes(t, o.root, pr[1], func() {
				must(t, os.Remove(abs(o, pr[1])))
				must(t, os.Link(abs(o, pr[0]), abs(o, pr[1])))
			})
			return pr[1] + " => " + pr[0], true
		}},
		{"missing", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			p, ok := pick(r, o.all)
			if ok {
				keepParentTimes(t, o.root, p, func() { must(t, os.RemoveAll(abs(o, p))) })
			}
			return p, ok
		}},
		{"extra", func(t *testing.T, r *rand.Rand, o *objects) (string, bool) {
			d, _ := pick(r, o.dirs)
			p := filepath.Join(d, "extra"+strconv.Itoa(r.IntN(1000)))
			keepParentTimes(t, o.root, p, func() { write(t, abs(o, p), "extra", 0o644) })
			return p, true
		}},
	}
}

// rsyncSays returns the lines of `rsync -aHAX --delete --numeric-ids -c -n
// -i SRC/ DST/`: what rsync would change.
func rsyncSays(t *testing.T, rs, src, dst string) []string {
	t.Helper()
	out, err := exec.Command(rs, "-aHAX", "--delete", "--numeric-ids", "-c", "-n", "-i", src+"/", dst+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("rsync -n: %v\n%s", err, out)
	}
	var lines []string
	for l := range strings.SplitSeq(string(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// onlyLinks reports whether every difference verify printed is in the
// hard link structure alone.
func onlyLinks(out string) bool {
	n := 0
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, "* ") || strings.HasPrefix(l, "- ") || strings.HasPrefix(l, "+ ") || strings.HasPrefix(l, "! ") {
			if !strings.HasSuffix(l, " (links)") {
				return false
			}
			n++
		}
	}
	return n > 0
}

// TestVerifyAgreesWithRsync is a property test of msync verify against
// rsync as the judge. The correctness tree (every object kind, hard links,
// setuid/sticky bits, xattrs, access and default ACLs, sockets, devices as
// root) is copied with msync; then, again and again, one attribute of one
// object is changed at SRC or DST (seeded: MSYNC_PROP_SEED picks another
// seed), and `rsync -aHAX --delete --numeric-ids -c -n -i` and `msync
// verify` judge the pair: whenever rsync would change something, verify
// must not say identical (exit 0), and whenever rsync finds nothing, verify
// must say identical. Two exceptions, where verify is the stricter: an
// mtime moved by under a second (verify compares nanoseconds, so it must
// say different whatever rsync says), and names one side links together
// that the other keeps apart, which rsync -H does not list when each name
// passes its quick check (verify says "links"). Both trees are then put
// back from a pristine copy.
func TestVerifyAgreesWithRsync(t *testing.T) {
	rs := needTool(t, "rsync")
	needTool(t, "setfacl")
	base := t.TempDir()
	src, dst, orig := base+"/src", base+"/dst", base+"/orig"
	must(t, os.Mkdir(src, 0o755))
	buildTreeACL(t, src)
	// The bulky files add nothing here but hashing time.
	must(t, os.Remove(src+"/big.bin"))
	must(t, os.RemoveAll(src+"/mail"))
	if !isRoot() {
		// Mutations write into files; a read-only one is root's to change.
		must(t, os.Chmod(src+"/ro", 0o755))
		must(t, os.RemoveAll(src+"/ro"))
	}
	// Hard links of other objects than files, and such objects alike
	// but apart, for the splits and joins.
	must(t, os.Mkdir(src+"/stwins", 0o755))
	must(t, os.Symlink("there", src+"/stwins/ln1"))
	must(t, os.Link(src+"/stwins/ln1", src+"/stwins/ln2"))
	must(t, unix.Mkfifo(src+"/stwins/fifo1", 0o640))
	must(t, os.Link(src+"/stwins/fifo1", src+"/stwins/fifo2"))
	for _, n := range []string{"l1", "l2"} {
		must(t, os.Symlink("same", src+"/stwins/"+n))
	}
	for _, n := range []string{"p1", "p2"} {
		must(t, unix.Mkfifo(src+"/stwins/"+n, 0o640))
	}
	for _, n := range []string{"l1", "l2", "p1", "p2", ""} {
		ts := []unix.Timespec{{Sec: 1e9}, {Sec: 1e9}}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, src+"/stwins/"+n, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	if isRoot() {
		must(t, unix.Mknod(src+"/disk", unix.S_IFBLK|0o640, int(unix.Mkdev(7, 0))))
		must(t, unix.Lsetxattr(src+"/abs-link", "trusted.on-a-link", []byte("1"), 0))
	}
	if code, _, e := msync("initial", src, dst, "--state", base+"/st"); code != 0 {
		t.Fatalf("initial: exit %d: %s", code, e)
	}
	if d := rsyncSays(t, rs, src, dst); len(d) > 0 {
		t.Fatalf("after msync initial rsync would change:\n%s", strings.Join(d, "\n"))
	}
	if out, err := exec.Command(rs, "-aHAX", "--numeric-ids", src+"/", orig+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync to orig: %v\n%s", err, out)
	}
	restore := func(to string, afresh bool) {
		t.Helper()
		if afresh {
			// rsync -H does not split names it finds linked and up to
			// date: the tree is copied anew.
			must(t, os.RemoveAll(to))
		}
		if out, err := exec.Command(rs, "-aHAX", "--delete", "--numeric-ids", "-c", orig+"/", to+"/").CombinedOutput(); err != nil {
			t.Fatalf("rsync orig to %s: %v\n%s", to, err, out)
		}
		// rsync leaves an mtime that differs by under a second on some
		// kinds (a fifo's, for one): put every mtime back exactly,
		// directories after their contents.
		all := listObjects(t, orig).all
		for i := len(all) - 1; i >= -1; i-- {
			rel := ""
			if i >= 0 {
				rel = all[i]
			}
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(orig, rel), &st))
			must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(to, rel), []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW))
		}
	}
	seed := uint64(1)
	if s := os.Getenv("MSYNC_PROP_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		must(t, err)
		seed = n
	}
	t.Logf("seed %d (MSYNC_PROP_SEED)", seed)
	r := rand.New(rand.NewPCG(seed, 42))
	ms := mutations()
	const rounds = 10
	start, tried, differed := time.Now(), 0, 0
	for i := range rounds * len(ms) {
		m := ms[i%len(ms)]
		side, root := "DST", dst
		if r.IntN(2) == 0 {
			side, root = "SRC", src
		}
		what, ok := m.apply(t, r, listObjects(t, root))
		if !ok {
			continue
		}
		tried++
		desc := fmt.Sprintf("#%d %s at %s: %s", i, m.name, side, what)
		says := rsyncSays(t, rs, src, dst)
		code, out, errOut := msync("verify", src, dst)
		if code != 0 && code != 1 {
			t.Fatalf("%s: verify failed: exit %d\n%s%s", desc, code, out, errOut)
		}
		subSecond := m.name == "mtime, under a second"
		switch {
		case len(says) > 0 && code == 0:
			t.Errorf("%s: rsync would change\n  %s\nbut verify says identical:\n%s", desc, strings.Join(says, "\n  "), out)
		case len(says) == 0 && code != 0 && onlyLinks(out):
			// rsync -H leaves alone names that DST links together and
			// SRC keeps apart (each passes the quick check): verify
			// names them ("links"); rsync's silence is the exception.
		case len(says) == 0 && code != 0 && !subSecond:
			t.Errorf("%s: rsync finds nothing, verify differs:\n%s", desc, out)
		case subSecond && code == 0:
			t.Errorf("%s: verify misses an mtime moved by under a second:\n%s", desc, out)
		case code == 0 && isRoot() && !strings.Contains(out, "\nIDENTICAL: "):
			t.Errorf("%s: as root verify compares everything, yet says:\n%s", desc, out)
		}
		if code != 0 {
			differed++
		}
		// An ACL rsync flags ('a') on an object it keeps is named an acl
		// by verify.
		for _, l := range says {
			if len(l) > 10 && l[0] == '.' && l[9] == 'a' && !strings.Contains(out, "acl") {
				t.Errorf("%s: rsync says %q, verify names no acl:\n%s", desc, l, out)
			}
		}
		join := m.name == "hard link join"
		restore(src, join && side == "SRC")
		restore(dst, join && side == "DST")
	}
	t.Logf("%d mutations, %d found by verify, in %s", tried, differed, time.Since(start).Round(time.Millisecond))
	if tried < rounds*len(ms)/2 {
		t.Fatalf("only %d of %d mutations applied", tried, rounds*len(ms))
	}
}
