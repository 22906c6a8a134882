package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/msync/msync/internal/fsx"
	"golang.org/x/sys/unix"
)

// CopyStats is what a copy floor went through.
type CopyStats struct {
	Entries int64 // everything lstat'ed below the source root
	Files   int64 // regular files copied
	Bytes   int64 // bytes copied
	Skipped int64 // devices, fifos and sockets: not copied
	// Renamed counts the files written under a temp name and renamed into
	// place (CopyOptions.Temp).
	Renamed int64
	// Recorded counts the files whose record was made as msync makes it
	// (CopyOptions.Record); Hashes is the sum, modulo 2^64, of their
	// xxhash64 digests.
	Recorded int64
	Hashes   uint64
	// Copy is the time of the copy; Sync that of the syncfs after it (0
	// unless asked for).
	Copy, Sync time.Duration
}

// String prints the stats as the floor command does.
func (s CopyStats) String() string {
	out := fmt.Sprintf("%d entries, %d files, %d bytes copied in %.3f s", s.Entries, s.Files, s.Bytes, s.Copy.Seconds())
	if s.Skipped > 0 {
		out += fmt.Sprintf(", %d special files skipped", s.Skipped)
	}
	if s.Renamed > 0 {
		out += fmt.Sprintf(", %d written under a temp name and renamed", s.Renamed)
	}
	if s.Recorded > 0 {
		out += fmt.Sprintf(", %d hashed and their source and copy fstat'ed", s.Recorded)
	}
	if s.Sync > 0 {
		out += fmt.Sprintf(", then syncfs %.3f s", s.Sync.Seconds())
	}
	return out
}

// CopyOptions change what CopyFloor does beyond the bare copy.
type CopyOptions struct {
	// Sync adds a syncfs of the destination's file system, timed apart.
	Sync bool
	// Temp writes every regular file under a temp name in its directory
	// and renames it into place, as rsync does and as msync's rule that
	// nothing half-written is ever visible at the destination requires:
	// the floor of a copy that keeps that promise.
	Temp bool
	// Record adds what msync records of every file it copies: its content
	// hash (xxhash64 of the bytes copied, for the manifests), an fstat of
	// the source once read (did it change while it was read?) and one of
	// the copy (its entry in the destination's manifest).
	Record bool
}

// CopyFloor copies the tree src into dst, which must not exist, making
// only the system calls that copying it the way rsync -a does cannot do
// without, on workers goroutines: for every directory open, getdents and
// mkdir; for every entry lstat; for every regular file open, read to the
// end, create under its final name, write, set owner (as root), mode and
// mtime, and close; for every symlink readlink and symlink. Directories
// get their owner, mode and mtime once everything is copied. Nothing is
// hashed or recorded unless o.Record asks, no temp name is used unless
// o.Temp asks (without it a half-written file is visible while it is
// written), hard links are copied as separate files, and devices, fifos
// and sockets are skipped.
// Its time is the floor of an initial copy on this machine.
func CopyFloor(ctx context.Context, workers int, src, dst string, o CopyOptions) (CopyStats, error) {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return CopyStats{}, &os.PathError{Op: "stat", Path: src, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return CopyStats{}, fmt.Errorf("%s: not a directory", src)
	}
	if err := unix.Mkdir(dst, 0o700); err != nil {
		return CopyStats{}, &os.PathError{Op: "mkdir", Path: dst, Err: err}
	}
	t := time.Now()
	var (
		mu    sync.Mutex
		total CopyStats
		dirs  = []dirMeta{{path: dst, st: st}}
		root  = os.Geteuid() == 0
	)
	err := walkParallel(ctx, workers, []copyJob{{src, dst}}, func() (func(copyJob) ([]copyJob, error), func()) {
		c := newCopier(root)
		c.temp = o.Temp
		if o.Record {
			c.h = xxhash.New()
		}
		return c.dir, func() {
			mu.Lock()
			total.Entries += c.st.Entries
			total.Files += c.st.Files
			total.Bytes += c.st.Bytes
			total.Skipped += c.st.Skipped
			total.Renamed += c.st.Renamed
			total.Recorded += c.st.Recorded
			total.Hashes += c.st.Hashes
			dirs = append(dirs, c.dirs...)
			mu.Unlock()
		}
	})
	if err == nil {
		err = setDirs(dirs, root)
	}
	if err != nil {
		return total, err
	}
	total.Copy = time.Since(t)
	if o.Sync {
		d, err := syncFS(dst)
		if err != nil {
			return total, err
		}
		total.Sync = d
	}
	return total, nil
}

// syncFS flushes the file system that holds dir and says how long it took.
func syncFS(dir string) (time.Duration, error) {
	t := time.Now()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Syncfs(fd)
		unix.Close(fd)
	}
	if err != nil {
		return 0, &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return time.Since(t), nil
}

type copyJob struct{ src, dst string }

type dirMeta struct {
	path string
	st   unix.Stat_t
}

func newCopier(root bool) *copier {
	return &copier{root: root, dirbuf: make([]byte, fsx.DirBufSize), filebuf: make([]byte, 256<<10)}
}

// setDirs gives directories their metadata once everything in them is
// written (writing into a directory changes its mtime).
func setDirs(dirs []dirMeta, root bool) error {
	for _, d := range dirs {
		if err := setMeta(unix.AT_FDCWD, d.path, d.path, &d.st, root, 0); err != nil {
			return err
		}
	}
	return nil
}

type copier struct {
	root     bool // set owners, as rsync -a does as root
	dirbuf   []byte
	filebuf  []byte
	dbuf     []byte         // for O_DIRECT copies, made on first use
	noDirect bool           // the destination refused O_DIRECT
	temp     bool           // write under a temp name, then rename (CopyOptions.Temp)
	h        *xxhash.Digest // not nil: make msync's record (CopyOptions.Record)
	st       CopyStats
	dirs     []dirMeta
}

// dir copies the entries of one directory and returns its subdirectories,
// made (empty) at the destination.
func (c *copier) dir(j copyJob) ([]copyJob, error) {
	sfd, err := unix.Open(j.src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: j.src, Err: err}
	}
	defer unix.Close(sfd)
	dfd, err := unix.Open(j.dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: j.dst, Err: err}
	}
	defer unix.Close(dfd)
	var subs []copyJob
	err = fsx.ReadDir(sfd, c.dirbuf, func(cname []byte) error {
		var st unix.Stat_t
		if err := fsx.Lstatat(sfd, cname, &st); err != nil {
			if err == unix.ENOENT {
				return nil
			}
			return &os.PathError{Op: "lstat", Path: filepath.Join(j.src, cstring(cname)), Err: err}
		}
		c.st.Entries++
		name := string(cname[:len(cname)-1])
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
				return &os.PathError{Op: "mkdir", Path: filepath.Join(j.dst, name), Err: err}
			}
			sub := copyJob{filepath.Join(j.src, name), filepath.Join(j.dst, name)}
			subs = append(subs, sub)
			c.dirs = append(c.dirs, dirMeta{sub.dst, st})
		case unix.S_IFREG:
			if err := c.file(sfd, dfd, cname, &st, j); err != nil {
				return err
			}
		case unix.S_IFLNK:
			buf := c.filebuf[:min(len(c.filebuf), int(st.Size)+1)]
			n, err := unix.Readlinkat(sfd, name, buf)
			if err != nil || n >= len(buf) {
				return fmt.Errorf("readlink %s: %w", filepath.Join(j.src, name), errors.Join(err, errors.New("changed size")))
			}
			if err := unix.Symlinkat(string(buf[:n]), dfd, name); err != nil {
				return &os.PathError{Op: "symlink", Path: filepath.Join(j.dst, name), Err: err}
			}
			if err := setMeta(dfd, name, filepath.Join(j.dst, name), &st, c.root, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		default:
			c.st.Skipped++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", j.src, err)
	}
	return subs, nil
}

// file copies one regular file, named cname (NUL-terminated) in both
// directories, and counts it.
func (c *copier) file(sfd, dfd int, cname []byte, st *unix.Stat_t, j copyJob) error {
	dname, name, tmp := cname, "", ""
	if c.temp {
		// rsync's way: a hidden name in the same directory (msync links an
		// O_TMPFILE inode instead).
		name = cstring(cname)
		tmp = tempName(name)
		dname = append([]byte(tmp), 0)
	}
	n, err := c.write(sfd, dfd, cname, dname, st, j)
	if err != nil {
		return err
	}
	if c.temp {
		if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
			unix.Unlinkat(dfd, tmp, 0)
			return &os.PathError{Op: "rename into place", Path: filepath.Join(j.dst, name), Err: err}
		}
		c.st.Renamed++
	}
	c.st.Files++
	c.st.Bytes += n
	return nil
}

// write copies the regular file cname of sfd to dname in dfd (both names
// NUL-terminated), which it creates (O_EXCL), and sets its owner (as root),
// mode and mtime as st has them. It returns the bytes written.
func (c *copier) write(sfd, dfd int, cname, dname []byte, st *unix.Stat_t, j copyJob) (int64, error) {
	name := unsafe.Pointer(&cname[0])
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOATIME
	in, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(sfd), uintptr(name), uintptr(flags), 0, 0, 0)
	if errno == unix.EPERM { // O_NOATIME needs ownership or CAP_FOWNER
		in, _, errno = unix.Syscall6(unix.SYS_OPENAT, uintptr(sfd), uintptr(name), uintptr(flags&^unix.O_NOATIME), 0, 0, 0)
	}
	if errno != 0 {
		return 0, &os.PathError{Op: "open", Path: filepath.Join(j.src, cstring(cname)), Err: errno}
	}
	defer unix.Close(int(in))
	wflags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	out, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dfd), uintptr(unsafe.Pointer(&dname[0])), uintptr(wflags), 0o600, 0, 0)
	if errno != 0 {
		return 0, &os.PathError{Op: "create", Path: filepath.Join(j.dst, cstring(dname)), Err: errno}
	}
	werr := func(op string, err error) (int64, error) {
		unix.Close(int(out))
		return 0, &os.PathError{Op: op, Path: filepath.Join(j.dst, cstring(dname)), Err: err}
	}
	var total int64
	var h io.Writer
	if c.h != nil {
		c.h.Reset()
		h = c.h
	}
	buffered := true
	if st.Size >= fsx.DirectMin && !c.noDirect {
		// As msync copies large files: around the page cache.
		if c.dbuf == nil {
			c.dbuf = fsx.AlignedBuf(fsx.DirectBuf)
		}
		n, refused, err := fsx.CopyDirect(context.Background(), int(out), fsx.NewFile(int(in), filepath.Join(j.src, cstring(cname))), h, c.dbuf)
		c.noDirect = refused
		switch {
		case err == fsx.ErrNoDirect:
		case err != nil:
			unix.Close(int(out))
			return 0, fmt.Errorf("copy to %s: %w", filepath.Join(j.dst, cstring(dname)), err)
		default:
			total, buffered = n, false
		}
	}
	for buffered {
		n, err := unix.Read(int(in), c.filebuf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(int(out))
			return 0, &os.PathError{Op: "read", Path: filepath.Join(j.src, cstring(cname)), Err: err}
		}
		if n == 0 {
			break
		}
		if h != nil {
			h.Write(c.filebuf[:n])
		}
		for b := c.filebuf[:n]; len(b) > 0; {
			m, err := unix.Write(int(out), b)
			if err != nil && err != unix.EINTR {
				return werr("write", err)
			}
			b = b[max(m, 0):]
		}
		total += int64(n)
	}
	var after unix.Stat_t
	if h != nil {
		if err := unix.Fstat(int(in), &after); err != nil {
			unix.Close(int(out))
			return 0, &os.PathError{Op: "fstat", Path: filepath.Join(j.src, cstring(cname)), Err: err}
		}
	}
	if c.root {
		if err := unix.Fchown(int(out), int(st.Uid), int(st.Gid)); err != nil {
			return werr("chown", err)
		}
	}
	if err := unix.Fchmod(int(out), st.Mode&0o7777); err != nil {
		return werr("chmod", err)
	}
	// utimensat with a NULL path sets the times of the descriptor itself.
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, st.Mtim}
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, out, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return werr("set mtime", e)
	}
	if h != nil {
		if err := unix.Fstat(int(out), &after); err != nil {
			return werr("fstat", err)
		}
		c.st.Recorded++
		c.st.Hashes += c.h.Sum64()
	}
	if err := unix.Close(int(out)); err != nil {
		return 0, &os.PathError{Op: "close", Path: filepath.Join(j.dst, cstring(dname)), Err: err}
	}
	return total, nil
}

// setMeta sets the owner (as root), mode (but of a symlink) and mtime of
// name in dirfd as st has them; errors name it as path.
func setMeta(dirfd int, name, path string, st *unix.Stat_t, root bool, flags int) error {
	if root {
		if err := unix.Fchownat(dirfd, name, int(st.Uid), int(st.Gid), flags); err != nil {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
	}
	if flags == 0 {
		if err := unix.Fchmodat(dirfd, name, st.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, st.Mtim}
	if err := unix.UtimesNanoAt(dirfd, name, ts, flags); err != nil {
		return &os.PathError{Op: "set mtime", Path: path, Err: err}
	}
	return nil
}
