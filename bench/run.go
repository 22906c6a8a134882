package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/msync/msync/sync/state"
)

// Config configures a side-by-side run of msync and rsync.
type Config struct {
	Dir   string // work directory; trees of several GB at scale 1.0
	Scale float64
	Seed  uint64
	Runs  int
	Msync string // msync binary
	Rsync string // rsync binary
	Log   io.Writer
	// MemFiles, when set, adds rows measuring peak RSS per file on a tree of
	// that many one-byte files.
	MemFiles int
	// SSH, when set, is the ssh command (as for -e) that reaches this host
	// on loopback: rows compare pulls over ssh with rsync -e over the same.
	SSH string
	// RsyncDaemon adds rows pulling from Rsync run as a daemon on loopback.
	RsyncDaemon bool
	// DropCaches empties the kernel's caches before each timed command and
	// reads back only the trees that command works on (see coldStart).
	DropCaches bool

	drop func() error // empties the caches; nil: dropKernelCaches
	// programs are the executables and libraries of the timed commands,
	// read back after each drop.
	programs []string

	// deletedAt is when the run last removed a large tree (removeTree).
	deletedAt time.Time
}

// After a large deletion, the next commands would create files while ext4
// (without a journal, as here) skips the inodes freed in the last minute,
// reading each one's inode table block to see how recently it was freed:
// profiled here, that was 15% of an initial copy's CPU two minutes after a
// tree was deleted, and the copy took 10.4 s instead of 7.8 s. The run
// waits deletionWindow after removing bigDeletion inodes or more (settle
// writes the inode tables first: while they are dirty, ext4 looks five
// minutes back instead of one).
var (
	bigDeletion    uint64 = 10000
	deletionWindow        = 65 * time.Second
)

// removeTree removes dir like os.RemoveAll and notes the time when that
// freed bigDeletion inodes or more of the file system holding c.Dir.
func (c *Config) removeTree(dir string) error {
	before := freeInodes(c.Dir)
	err := os.RemoveAll(dir)
	if after := freeInodes(c.Dir); after >= before+bigDeletion {
		c.deletedAt = time.Now()
	}
	return err
}

func freeInodes(dir string) uint64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return 0
	}
	return st.Ffree
}

// waitAfterDeletion waits until deletionWindow has passed since the last
// large deletion, if there was one: for the first timed command.
func (c *Config) waitAfterDeletion() {
	if c.deletedAt.IsZero() {
		return
	}
	settle()
	if d := time.Until(c.deletedAt.Add(deletionWindow)); d > 0 {
		c.logf("waiting %.0f s after deleting a large tree: ext4 skips the inodes freed in the last minute, at a cost to every file it creates", d.Seconds())
		time.Sleep(d)
	}
}

// copies is the directory that holds every copy a run makes; the run
// removes it when it ends.
func (c *Config) copies() string { return filepath.Join(c.Dir, "copies") }

// copyDir names a fresh directory for one copy under c.copies(). Copies are
// kept until the run is over: a pass timed right after gigabytes were
// deleted pays for the deletion. ext4 skips the inodes freed in the last
// minutes when it allocates new ones, reading each one's inode table block
// to see how recently it was freed; profiled here, an rsync -aH of a
// scale-1.0 tree spent a third of its CPU in that (recently_deleted,
// find_get_block) and took twice as long. A migration's new disk has no
// such history.
func (c *Config) copyDir(name string) string {
	return filepath.Join(c.copies(), name)
}

// prepareCopies removes what a killed run left in c.copies() and checks that
// the file system holding c.Dir has room for n copies of a tree of the
// given bytes, since none is deleted before the run ends.
func (c *Config) prepareCopies(n int, bytes int64) error {
	dir := c.copies()
	if _, err := os.Lstat(dir); err == nil {
		c.logf("removing %s, left by an earlier run", dir)
		if err := c.removeTree(dir); err != nil {
			return err
		}
		settle()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	// Each copy takes its bytes plus a block per small file at most; a
	// fifth more covers that on the generated trees.
	need := int64(n) * bytes / 4 * 5
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("bench run keeps its %d copies of the %d MiB tree until it ends and needs about %d MiB free in %s; there are %d MiB (use a smaller --scale or fewer --runs, or another --dir)",
			n, bytes>>20, need>>20, dir, free>>20)
	}
	return nil
}

// Summary is the median and range of one measurement over the runs.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
	RSSKB  int64   `json:"peak_rss_kb,omitempty"`
}

func summarize(xs []float64, rss []int64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	var peak int64
	for _, r := range rss {
		peak = max(peak, r)
	}
	return Summary{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s), RSSKB: peak}
}

// Row is one line of the comparison.
type Row struct {
	Name  string   `json:"name"`
	Unit  string   `json:"unit"`
	Msync Summary  `json:"msync"`
	Rsync Summary  `json:"rsync"`
	Ref   *Summary `json:"reference,omitempty"` // RefName's times, on the same trees
	// RefName is the reference command: cp -a for the initial copy, rsync
	// with -X (the work msync does by default) for the no-change pass and
	// verify.
	RefName string `json:"reference_name,omitempty"`
	// MsyncRef is msync's time at the reference's work when the row's msync
	// command does less (verify: the row compares without xattrs, as rsync
	// without -X does; the reference compares them on both sides).
	MsyncRef *Summary `json:"msync_reference,omitempty"`
	Ratio    float64  `json:"ratio"`            // msync / rsync, medians
	Target   float64  `json:"target,omitempty"` // the ratio the project aims for
	Note     string   `json:"note,omitempty"`
	// Floor is bench floor over the same trees: only the system calls no
	// tool can skip (see Floor). FloorRatio = Floor / rsync, medians: the
	// smallest ratio this machine allows a tool that makes those calls.
	Floor      *Summary `json:"floor,omitempty"`
	FloorRatio float64  `json:"floor_ratio,omitempty"`
	// Duty is the floor plus what msync's promises add to it: for the
	// initial copy, every file written under a temp name and renamed into
	// place (nothing half-written is ever visible), hashed for the
	// manifests, and its source and copy fstat'ed (did it change while it
	// was read? the destination manifest's entry); for a no-change pass
	// and a catch-up, the last manifests decoded beside the walk or the
	// update (the content hashes a pass records are carried over from
	// them). DutyRatio = Duty / rsync.
	Duty      *Summary `json:"duty_floor,omitempty"`
	DutyRatio float64  `json:"duty_floor_ratio,omitempty"`
}

// Result is a whole run.
type Result struct {
	Date    string `json:"date"`
	Machine string `json:"machine"`
	Command string `json:"command"`
	Scale   float64
	Runs    int
	Files   int64 `json:"files"`
	Bytes   int64 `json:"bytes"`
	// DropCaches: every timed command started from emptied caches with its
	// own trees read back (Config.DropCaches).
	DropCaches bool  `json:"drop_caches"`
	Rows       []Row `json:"rows"`
}

type sample struct {
	secs float64
	rss  int64
	out  string
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// gnuTime is GNU time, used to read a command's peak RSS: the rusage of a
// child forked by this (large) Go process keeps the parent's high-water mark
// across exec, so it cannot be read from our own wait4.
const gnuTime = "/usr/bin/time"

var rssLine = regexp.MustCompile(`(?m)^MSYNC_BENCH_RSS_KB=(\d+)$`)

// settle flushes dirty data and waits until the kernel has written it, so
// that no command pays for the writeback or deletions of the one before.
func settle() {
	exec.Command("sync").Run()
	for range 50 {
		b, err := os.ReadFile("/proc/meminfo")
		if err != nil {
			return
		}
		i := strings.Index(string(b), "Dirty:")
		if i < 0 {
			return
		}
		f := strings.Fields(string(b[i:]))
		if kb, _ := strconv.ParseInt(f[1], 10, 64); kb < 16<<10 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Config) run(ctx context.Context, name string, args ...string) (sample, error) {
	settle()
	cmd := exec.CommandContext(ctx, name, args...)
	haveTime := false
	if _, err := os.Stat(gnuTime); err == nil {
		cmd = exec.CommandContext(ctx, gnuTime, append([]string{"-f", "MSYNC_BENCH_RSS_KB=%M", name}, args...)...)
		haveTime = true
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t := time.Now()
	err := cmd.Run()
	s := sample{secs: time.Since(t).Seconds(), out: out.String()}
	if m := rssLine.FindStringSubmatch(errb.String()); haveTime && m != nil {
		s.rss, _ = strconv.ParseInt(m[1], 10, 64)
	} else if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.rss = ru.Maxrss
		}
	}
	if err != nil {
		return s, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, errb.String())
	}
	c.logf("  %6.2fs %7d KB  %s %s", s.secs, s.rss, filepath.Base(name), strings.Join(args, " "))
	return s, nil
}

// floor times bench floor over dirs (with read, reading every file) and
// adds the sample to s.
func (c *Config) floor(ctx context.Context, s *series, read bool, dirs ...string) error {
	args := []string{"bench", "floor", "--workers", "4"}
	t := walks(dirs...)
	if read {
		args = append(args, "--read", "--hash") // a checksum comparison hashes what it reads
		t = reads(dirs...)
	}
	x, err := c.timedRun(ctx, t, c.Msync, append(args, dirs...)...)
	if err != nil {
		return err
	}
	s.floor = append(s.floor, x.secs)
	return nil
}

// dutyFloor times bench floor over dirs with the manifests of the state
// directory state decoded beside the walk (the floor of a pass that
// carries hashes over from them) and adds the sample to s.duty.
func (c *Config) dutyFloor(ctx context.Context, s *series, stateDir string, dirs ...string) error {
	args := append([]string{"bench", "floor", "--workers", "4"}, manifestArgs(stateDir)...)
	x, err := c.timedRun(ctx, reads(stateDir).and(dirs...), c.Msync, append(args, dirs...)...)
	if err != nil {
		return err
	}
	s.duty = append(s.duty, x.secs)
	return nil
}

// manifestArgs are the bench floor flags that decode the two manifests of
// the state directory stateDir.
func manifestArgs(stateDir string) []string {
	d := &state.Dir{Path: stateDir}
	return []string{"--manifest", d.ManifestPath(state.Source), "--manifest", d.ManifestPath(state.Dest)}
}

// reference times a reference command (not compared against a target) and
// adds the sample to s.
func (c *Config) reference(ctx context.Context, s *series, t trees, name string, args ...string) error {
	x, err := c.timedRun(ctx, t, name, args...)
	if err != nil {
		return err
	}
	s.ref, s.crs = append(s.ref, x.secs), append(s.crs, x.rss)
	return nil
}

func (c *Config) quiet(ctx context.Context, name string, args ...string) error {
	_, err := c.run(ctx, name, args...)
	return err
}

var bytesSent = regexp.MustCompile(`Total bytes sent: ([0-9,]+)`)

// Run generates (once) a tree at c.Scale and compares msync with rsync on
// identical copies, alternating which goes first, c.Runs times.
func Run(ctx context.Context, c Config) (*Result, error) {
	if err := c.setUp(); err != nil {
		return nil, err
	}
	src, err := c.sourceTree()
	if err != nil {
		return nil, err
	}
	files, total := treeSize(src)
	rsyncVer, _ := exec.Command(c.Rsync, "--version").Output()
	res := &Result{Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), Scale: c.Scale, Runs: c.Runs, Files: files, Bytes: total,
		Machine: fmt.Sprintf("%d cores, %s, %s, %s", runtime.NumCPU(), memTotal(), strings.SplitN(string(rsyncVer), "\n", 2)[0], runtime.Version()), DropCaches: c.DropCaches}

	copies := 6*c.Runs + 2 // m, r, ref, ref2, floor and the temp-name floor each run; m2 and r2 once
	if c.RsyncDaemon {
		copies += 2 * c.Runs
	}
	if c.SSH != "" {
		copies += 2 * c.Runs
	}
	if err := c.prepareCopies(copies, total); err != nil {
		return nil, err
	}
	defer os.RemoveAll(c.copies())
	c.waitAfterDeletion()
	l := newLocalRuns(&c, src)
	for i := range c.Runs {
		c.logf("run %d of %d", i+1, c.Runs)
		if err := l.round(ctx, i); err != nil {
			return nil, err
		}
	}
	res.Rows = append(res.Rows, l.rows(files)...)
	for _, more := range []struct {
		on   bool
		rows func(context.Context, string) ([]Row, error)
	}{
		{c.RsyncDaemon, c.rsyncDaemonRows},
		{c.SSH != "", c.sshRows},
		{c.MemFiles > 0, func(ctx context.Context, _ string) ([]Row, error) { return c.memRows(ctx) }},
	} {
		if !more.on {
			continue
		}
		rows, err := more.rows(ctx, src)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, rows...)
	}
	return res, nil
}

// setUp fills in c's defaults (4 runs, rsync from PATH), makes c.Dir and,
// with DropCaches, checks now that the caches can be dropped rather than
// after generating a tree.
func (c *Config) setUp() error {
	if c.Runs <= 0 {
		c.Runs = 4
	}
	if c.Rsync == "" {
		p, err := exec.LookPath("rsync")
		if err != nil {
			return fmt.Errorf("bench run needs rsync: %w", err)
		}
		c.Rsync = p
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	if c.DropCaches {
		c.programs = programFiles(c.Msync, c.Rsync, "cp", gnuTime)
		if c.drop == nil {
			if err := dropKernelCaches(); err != nil {
				return err
			}
		}
	}
	return nil
}

// treeSize counts the objects under src and the bytes of its regular files.
func treeSize(src string) (files, bytes int64) {
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			files++
			if d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					bytes += fi.Size()
				}
			}
		}
		return nil
	})
	return files, bytes
}

// maxRounds is how many mutate rounds a kept source tree takes before it
// is generated again (Mutate's stamps hold for about 300).
const maxRounds = 200

// roundsFile counts the mutate rounds applied to the kept source tree.
func (c *Config) roundsFile() string { return filepath.Join(c.Dir, "src.rounds") }

// rounds returns how many mutate rounds the kept source tree has had; ok
// is false when that is unknown (no count: a tree of an older msync, which
// did not keep one).
func (c *Config) rounds() (n int, ok bool) {
	b, err := os.ReadFile(c.roundsFile())
	if err != nil {
		return 0, false
	}
	n, err = strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil && n >= 0
}

// mutate applies the kept source tree's next round. Rounds go on from one
// run to the next: a round applied twice to the same tree can write a file
// again with the size and mtime it already had (.bash_history is 1000+50R
// bytes), a change that a pass trusting size and mtime, as rsync does,
// never sees, and the run's verify then fails. The count is written first,
// so a run killed during Mutate never repeats its round either.
func (c *Config) mutate(src string) error {
	n, ok := c.rounds()
	if !ok {
		return fmt.Errorf("%s: unreadable; remove %s to generate the tree again", c.roundsFile(), src)
	}
	r := n + 1
	if err := os.WriteFile(c.roundsFile(), []byte(strconv.Itoa(r)+"\n"), 0o644); err != nil {
		return err
	}
	_, err := Mutate(src, c.Seed, r)
	return err
}

// sourceTree returns c.Dir/src, generated for c.Seed and c.Scale unless
// the marker file beside it says it already is and the count of its mutate
// rounds leaves room for this run's (under maxRounds). The marker names the
// seed and scale inside, so a tree generated for another scale never passes
// for this one; it is written only once the tree is complete.
func (c *Config) sourceTree() (string, error) {
	src := filepath.Join(c.Dir, "src")
	marker := filepath.Join(c.Dir, "src.generated")
	want := fmt.Sprintf("seed %d scale %g\n", c.Seed, c.Scale)
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		// Room for this run's rounds (its pulls included).
		if n, ok := c.rounds(); ok && n+4*c.Runs+4 < maxRounds {
			return src, nil
		}
	}
	// Markers of earlier versions were named after the seed and scale.
	old, _ := filepath.Glob(filepath.Join(c.Dir, "src.seed*.scale*"))
	for _, m := range append(old, marker, c.roundsFile()) {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	if err := c.removeTree(src); err != nil {
		return "", err
	}
	c.logf("generating %s (scale %g)", src, c.Scale)
	if _, err := Gen(src, c.Seed, c.Scale); err != nil {
		return "", err
	}
	if err := os.WriteFile(c.roundsFile(), []byte("0\n"), 0o644); err != nil {
		return "", err
	}
	return src, os.WriteFile(marker, []byte(want), 0o644)
}

// memRows measures peak RSS per file of an initial copy and a no-change
// catch-up of c.MemFiles tiny files.
func (c *Config) memRows(ctx context.Context) ([]Row, error) {
	tiny := filepath.Join(c.Dir, "tiny")
	marker := filepath.Join(c.Dir, fmt.Sprintf("tiny.%d", c.MemFiles))
	if _, err := os.Stat(marker); err != nil {
		os.RemoveAll(tiny)
		c.logf("generating %d tiny files in %s", c.MemFiles, tiny)
		if _, err := GenTiny(tiny, c.MemFiles); err != nil {
			return nil, err
		}
		os.WriteFile(marker, nil, 0o644)
	}
	m, r, ms := filepath.Join(c.Dir, "tiny.m"), filepath.Join(c.Dir, "tiny.r"), filepath.Join(c.Dir, "tiny.state")
	defer func() {
		for _, d := range []string{m, r, ms} {
			os.RemoveAll(d)
		}
	}()
	var rows []Row
	perFile := func(name string, mx, rx sample) Row {
		n := float64(c.MemFiles)
		row := Row{Name: fmt.Sprintf("peak RSS per file, %d one-byte files: %s", c.MemFiles, name), Unit: "B/file",
			Msync: Summary{Median: float64(mx.rss*1024) / n, N: 1, RSSKB: mx.rss},
			Rsync: Summary{Median: float64(rx.rss*1024) / n, N: 1, RSSKB: rx.rss}, Target: 0,
			Note: fmt.Sprintf("msync %.1f s, rsync %.1f s", mx.secs, rx.secs)}
		if row.Rsync.Median > 0 {
			row.Ratio = row.Msync.Median / row.Rsync.Median
		}
		return row
	}
	mi, err := c.timedRun(ctx, reads(tiny), c.Msync, "initial", tiny, m, "--state", ms, "--no-progress")
	if err != nil {
		return nil, err
	}
	ri, err := c.timedRun(ctx, reads(tiny), c.Rsync, "-aH", tiny+"/", r+"/")
	if err != nil {
		return nil, err
	}
	rows = append(rows, perFile("initial copy", mi, ri))
	mc, err := c.timedRun(ctx, reads(ms).and(tiny, m), c.Msync, "catchup", tiny, m, "--state", ms, "--no-progress")
	if err != nil {
		return nil, err
	}
	rc, err := c.timedRun(ctx, walks(tiny, r), c.Rsync, "-aH", "--delete", tiny+"/", r+"/")
	if err != nil {
		return nil, err
	}
	rows = append(rows, perFile("no-change pass", mc, rc))
	return rows, nil
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "? RAM"
	}
	f := strings.Fields(string(b))
	if len(f) > 1 {
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		return fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
	}
	return "? RAM"
}

func fmtVal(unit string, s Summary) string {
	switch unit {
	case "s":
		if s.N > 1 {
			return fmt.Sprintf("%.2f s (%.2f-%.2f)", s.Median, s.Min, s.Max)
		}
		return fmt.Sprintf("%.2f s", s.Median)
	case "bytes":
		return fmt.Sprintf("%.0f", s.Median)
	}
	return fmt.Sprintf("%.0f", s.Median)
}

// conditions says what was in memory when each timed command started.
func (r *Result) conditions() string {
	if r.DropCaches {
		return "each timed command started with the kernel's caches dropped and only the trees it works on read back (--drop-caches): the same free memory for every command"
	}
	return "warm page cache (with earlier copies in it: the command that must evict them pays for it)"
}

// Markdown writes the result as a table.
func (r *Result) Markdown(w io.Writer) {
	fmt.Fprintf(w, "Date: %s. Machine: %s.\n", r.Date, r.Machine)
	fmt.Fprintf(w, "Tree: `msync bench gen --scale %g`: %d entries, %.0f MiB. Medians of %d runs (min-max); each run alternates which tool goes first, on identical fresh copies, %s. Floor: msync bench floor over the same trees, only the system calls no tool can skip (getdents and lstat of every entry; for verify also open, read, hash (xxhash64) and close of every file, files under 64 KiB through io_uring a directory at a time as msync reads them; for the initial copy, bench floor --copy-to --sync: create, write (files of 1 MiB or more with O_DIRECT, as msync writes them) and set owner, mode and mtime of every file under its final name; for the catch-up, bench floor --update-to --sync on the cp -a copy: both walks, then write what changed under a temp name and rename it over the old copy as rsync does, make what is new, remove what went; one syncfs at the end as msync makes), on 4 goroutines; a ratio below floor/rsync is out of reach on this machine in the same conditions (for the initial copy and the catch-up, which write, the cost of filling the page cache moves between runs: there the floor is a guide, not a bound). Floor with msync's duties: the floor plus what msync's promises add to it: for the initial copy, every file written under a temp name and renamed into place (bench floor --temp; nothing half-written is ever visible), hashed (xxhash64) for the manifests, and its source fstat'ed once read and its copy once written (bench floor --record: did the file change while it was read? the destination manifest's entry); for the no-change passes and the catch-up, the two last manifests of the state directory decoded beside the walk or the update (bench floor --manifest; the content hashes a pass records are carried over from them; the catch-up's runs on a second cp -a copy).\n\n", r.Scale, r.Files, float64(r.Bytes)/(1<<20), r.Runs, r.conditions())
	fmt.Fprintln(w, "| operation | msync | rsync | msync/rsync | target | floor (floor/rsync) | floor with msync's duties (/rsync) | peak RSS msync / rsync |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, row := range r.Rows {
		target, rss := "", ""
		if row.Target > 0 {
			mark := "met"
			if row.Ratio > row.Target {
				mark = "not met"
			}
			target = fmt.Sprintf("<= %.1f (%s)", row.Target, mark)
		}
		if row.Msync.RSSKB > 0 {
			rss = fmt.Sprintf("%.0f / %.0f MiB", float64(row.Msync.RSSKB)/1024, float64(row.Rsync.RSSKB)/1024)
		}
		name := row.Name
		if row.Note != "" {
			name += "; " + row.Note
		}
		floor, duty := "", ""
		if row.Floor != nil {
			floor = fmt.Sprintf("%s (%.2f)", fmtVal(row.Unit, *row.Floor), row.FloorRatio)
		}
		if row.Duty != nil {
			duty = fmt.Sprintf("%s (%.2f)", fmtVal(row.Unit, *row.Duty), row.DutyRatio)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.2f | %s | %s | %s | %s |\n", name, fmtVal(row.Unit, row.Msync), fmtVal(row.Unit, row.Rsync), row.Ratio, target, floor, duty, rss)
		if row.Ref != nil {
			m, mcol, rss := row.Msync, " ", fmt.Sprintf("%.0f MiB", float64(row.Ref.RSSKB)/1024)
			if row.MsyncRef != nil {
				m, mcol = *row.MsyncRef, " "+fmtVal("s", *row.MsyncRef)+" "
				rss = fmt.Sprintf("%.0f / %s", float64(m.RSSKB)/1024, rss)
			}
			ratio := ""
			if row.Ref.Median > 0 {
				ratio = fmt.Sprintf("%.2f (msync / this)", m.Median/row.Ref.Median)
			}
			fmt.Fprintf(w, "| (reference: %s) |%s| %s | %s | | | | %s |\n", row.RefName, mcol, fmtVal("s", *row.Ref), ratio, rss)
		}
	}
}

// wireBytes reads the wire bytes of msync --json output.
func wireBytes(out string) (float64, error) {
	var js struct {
		Result struct {
			Stats struct {
				Wire int64 `json:"wire_bytes"`
			} `json:"stats"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		return 0, fmt.Errorf("msync --json: %w", err)
	}
	return float64(js.Result.Stats.Wire), nil
}

var bytesReceived = regexp.MustCompile(`Total bytes received: ([0-9,]+)`)

func statNum(re *regexp.Regexp, out string) (int64, error) {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("rsync --stats: no %q in:\n%s", re.String(), out)
	}
	return strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
}

// sshRows pulls the tree over ssh on loopback (msync serve --stdio on the
// far side vs rsync --server), initial and after a mutate round, and
// compares the bytes each tool counts on its connection.
func (c *Config) sshRows(ctx context.Context, src string) ([]Row, error) {
	msyncAbs, err := filepath.Abs(c.Msync)
	if err != nil {
		return nil, err
	}
	remote := "127.0.0.1:" + src
	p, err := c.pullRuns(ctx, src, "ssh", func(kind, dst, state string) []string {
		return []string{kind, remote, dst, "--state", state, "--no-progress", "--json", "-e", c.SSH, "--remote-msync", msyncAbs}
	}, []string{"-aH", "--delete", "--stats", "-e", c.SSH, remote + "/"}, true)
	if err != nil {
		return nil, err
	}
	return []Row{
		p.init.row("ssh pull, initial copy (msync host:path vs rsync -aH -e ssh)", "s", 0.7, "loopback sshd, same ssh options"),
		p.catchup.row("ssh pull, catch-up after one mutate round", "s", 0.5, ""),
		p.bytes.row("ssh pull, catch-up bytes on the connection (both directions, as each tool counts)", "bytes", 0.8, ""),
	}, nil
}

// rsyncDaemonRows pulls the tree from a stock rsync daemon on loopback
// (c.Rsync --daemon): msync initial/catchup rsync://... against the same
// rsync as a client of the same daemon.
func (c *Config) rsyncDaemonRows(ctx context.Context, src string) ([]Row, error) {
	port, stop, err := c.startRsyncDaemon(filepath.Dir(src))
	if err != nil {
		return nil, err
	}
	defer stop()
	url := fmt.Sprintf("rsync://127.0.0.1:%d/bench/%s", port, filepath.Base(src))
	p, err := c.pullRuns(ctx, src, "rsync daemon", func(kind, dst, state string) []string {
		return []string{kind, url, dst, "--state", state, "--no-progress", "--json"}
	}, []string{"-aH", "--numeric-ids", "--delete", "--stats", url + "/"}, false)
	if err != nil {
		return nil, err
	}
	return []Row{
		p.init.row("pull from a stock rsync daemon, initial copy (msync rsync:// vs rsync -aH rsync://)", "s", 1.0, "the same rsync serves both"),
		p.catchup.row("pull from a stock rsync daemon, catch-up after one mutate round", "s", 1.0, ""),
	}, nil
}

// startRsyncDaemon serves dir read-only as module "bench" on 127.0.0.1.
func (c *Config) startRsyncDaemon(dir string) (int, func(), error) {
	conf := "use chroot = no\n"
	if os.Geteuid() == 0 {
		conf += "uid = root\ngid = root\n"
	}
	conf += "[bench]\n\tpath = " + dir + "\n\tread only = yes\n"
	cf := filepath.Join(c.Dir, "rsyncd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return 0, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(c.Rsync, "--daemon", "--no-detach", "--config="+cf, "--address=127.0.0.1", "--port="+strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("%s --daemon: %w", c.Rsync, err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for range 250 {
		if conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			conn.Close()
			return port, stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return 0, nil, fmt.Errorf("%s --daemon did not listen on port %d", c.Rsync, port)
}

// series are the samples of one row: msync, rsync and a reference tool.
type series struct {
	m, r, ref, mref, floor, duty []float64
	mrss, rrss, crs, mrrss       []int64
}

func (s *series) row(name, unit string, target float64, note string) Row {
	rw := Row{Name: name, Unit: unit, Msync: summarize(s.m, s.mrss), Rsync: summarize(s.r, s.rrss), Target: target, Note: note}
	if len(s.ref) > 0 {
		ref := summarize(s.ref, s.crs)
		rw.Ref = &ref
	}
	if len(s.mref) > 0 {
		mref := summarize(s.mref, s.mrrss)
		rw.MsyncRef = &mref
	}
	if rw.Rsync.Median > 0 {
		rw.Ratio = rw.Msync.Median / rw.Rsync.Median
	}
	rw.Floor, rw.FloorRatio = floorOf(s.floor, rw.Rsync.Median)
	rw.Duty, rw.DutyRatio = floorOf(s.duty, rw.Rsync.Median)
	return rw
}

// floorOf summarizes floor samples and their ratio to rsync's median
// (nil, 0 without samples).
func floorOf(samples []float64, rsync float64) (*Summary, float64) {
	if len(samples) == 0 {
		return nil, 0
	}
	f := summarize(samples, nil)
	if rsync <= 0 {
		return &f, 0
	}
	return &f, f.Median / rsync
}

// pulls are the samples of pullRuns.
type pulls struct{ init, catchup, bytes series }

// pullRuns pulls src into fresh directories c.Runs times, msync (mArgs)
// and rsync (rArgs, to which the destination is appended) alternating who
// goes first: an initial copy, then a catch-up after one mutate round.
// With wire set it also reads the bytes each tool counted on its
// connection during the catch-up.
func (c *Config) pullRuns(ctx context.Context, src, label string, mArgs func(kind, dst, state string) []string, rArgs []string, wire bool) (*pulls, error) {
	tag := strings.ReplaceAll(label, " ", "-")
	p := &pulls{}
	for i := range c.Runs {
		c.logf("%s run %d of %d", label, i+1, c.Runs)
		run := fmt.Sprintf("%s.run%d.", tag, i+1)
		m, r, ms := c.copyDir(run+"m"), c.copyDir(run+"r"), c.copyDir(run+"m.state")
		for _, phase := range []string{"initial", "catchup"} {
			s := &p.init
			if phase == "catchup" {
				s = &p.catchup
				if err := c.mutate(src); err != nil {
					return nil, err
				}
			}
			for _, isM := range []bool{i%2 == 0, i%2 != 0} {
				mt, rt := reads(src), reads(src)
				if phase == "catchup" {
					mt, rt = reads(src, ms).and(m), rt.and(r)
				}
				if isM {
					x, err := c.timedRun(ctx, mt, c.Msync, mArgs(phase, m, ms)...)
					if err != nil {
						return nil, err
					}
					s.m, s.mrss = append(s.m, x.secs), append(s.mrss, x.rss)
					if wire && phase == "catchup" {
						w, err := wireBytes(x.out)
						if err != nil {
							return nil, err
						}
						p.bytes.m = append(p.bytes.m, w)
					}
					continue
				}
				x, err := c.timedRun(ctx, rt, c.Rsync, append(slices.Clone(rArgs), r+"/")...)
				if err != nil {
					return nil, err
				}
				s.r, s.rrss = append(s.r, x.secs), append(s.rrss, x.rss)
				if wire && phase == "catchup" {
					sent, err := statNum(bytesSent, x.out)
					if err != nil {
						return nil, err
					}
					recv, err := statNum(bytesReceived, x.out)
					if err != nil {
						return nil, err
					}
					p.bytes.r = append(p.bytes.r, float64(sent+recv))
				}
			}
		}
	}
	return p, nil
}
