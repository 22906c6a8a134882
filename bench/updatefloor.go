package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/msync/msync/internal/fsx"
	"golang.org/x/sys/unix"
)

// tempSuffix ends the temp name ("." NAME tempSuffix) that the floors
// write a file under before they rename it into place.
const tempSuffix = ".floor-tmp"

// tempName is the temp name of name: "." name tempSuffix, with name cut
// short where that would pass the 255 bytes a name may have.
func tempName(name string) string {
	if keep := 255 - 1 - len(tempSuffix); len(name) > keep {
		name = name[:keep]
	}
	return "." + name + tempSuffix
}

// UpdateStats is what an update floor went through.
type UpdateStats struct {
	Entries int64 // entries lstat'ed on both sides, roots excluded
	Copied  int64 // regular files (re)written
	Bytes   int64 // bytes written
	Created int64 // directories and symlinks made
	Meta    int64 // entries whose owner, mode or mtime alone was set
	Deleted int64 // entries removed from dst (a directory counts once)
	// Time is the time of the update; Sync that of the syncfs after it (0
	// unless asked for).
	Time, Sync time.Duration
}

// String prints the stats as the floor command does.
func (s UpdateStats) String() string {
	out := fmt.Sprintf("%d entries, %d files written (%d bytes), %d made, %d metadata only, %d deleted in %.3f s",
		s.Entries, s.Copied, s.Bytes, s.Created, s.Meta, s.Deleted, s.Time.Seconds())
	if s.Sync > 0 {
		out += fmt.Sprintf(", then syncfs %.3f s", s.Sync.Seconds())
	}
	return out
}

// UpdateFloor brings dst up to date with src the way rsync -a --delete
// does between local trees, with only the system calls that needs, on
// workers goroutines: every directory of both trees listed and every entry
// lstat'ed; a regular file whose size or mtime differs written (owner,
// mode and mtime set) under a temp name and renamed over the old copy, as
// rsync does it, so that the old copy stays whole until the new one is
// (one that dst lacks is made under its own name); a symlink that differs
// replaced; owner, mode or mtime set where only they differ; what dst has
// and src has not removed. No hashing, no record; special files are
// skipped. With syncfs set, syncfs on dst follows, timed apart. Its time is
// the floor of a catch-up pass on this machine.
func UpdateFloor(ctx context.Context, workers int, src, dst string, syncfs bool) (UpdateStats, error) {
	for _, d := range []string{src, dst} {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return UpdateStats{}, &os.PathError{Op: "stat", Path: d, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return UpdateStats{}, fmt.Errorf("%s: not a directory", d)
		}
	}
	t := time.Now()
	var (
		mu    sync.Mutex
		total UpdateStats
		dirs  []dirMeta // directories whose metadata differs, set at the end
	)
	root := os.Geteuid() == 0
	err := walkParallel(ctx, workers, []copyJob{{src, dst}}, func() (func(copyJob) ([]copyJob, error), func()) {
		u := &updater{copier: *newCopier(root)}
		return u.dir, func() {
			mu.Lock()
			total.Entries += u.st.Entries
			total.Copied += u.st.Copied
			total.Bytes += u.st.Bytes
			total.Created += u.st.Created
			total.Meta += u.st.Meta
			total.Deleted += u.st.Deleted
			dirs = append(dirs, u.dirs...)
			mu.Unlock()
		}
	})
	if err == nil {
		err = setDirs(dirs, root)
	}
	if err != nil {
		return total, err
	}
	var sst, dst2 unix.Stat_t
	if err := unix.Stat(src, &sst); err == nil && unix.Stat(dst, &dst2) == nil && metaDiffers(&sst, &dst2, root) {
		if err := setMeta(unix.AT_FDCWD, dst, dst, &sst, root, 0); err != nil {
			return total, err
		}
	}
	total.Time = time.Since(t)
	if syncfs {
		d, err := syncFS(dst)
		if err != nil {
			return total, err
		}
		total.Sync = d
	}
	return total, nil
}

type updater struct {
	copier
	st UpdateStats
}

type dirent struct {
	name string
	st   unix.Stat_t
}

// list returns the entries of the open directory fd, sorted by name.
func (u *updater) list(fd int, dir string) ([]dirent, error) {
	var out []dirent
	err := fsx.ReadDir(fd, u.dirbuf, func(cname []byte) error {
		var st unix.Stat_t
		if err := fsx.Lstatat(fd, cname, &st); err != nil {
			if err == unix.ENOENT {
				return nil
			}
			return &os.PathError{Op: "lstat", Path: filepath.Join(dir, cstring(cname)), Err: err}
		}
		out = append(out, dirent{string(cname[:len(cname)-1]), st})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	u.st.Entries += int64(len(out))
	slices.SortFunc(out, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// metaDiffers reports whether owner (as root), mode or mtime differ.
func metaDiffers(a, b *unix.Stat_t, root bool) bool {
	return a.Mode != b.Mode || a.Mtim != b.Mtim || root && (a.Uid != b.Uid || a.Gid != b.Gid)
}

// dir updates one directory of dst and returns the subdirectories to visit.
func (u *updater) dir(j copyJob) ([]copyJob, error) {
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
	ss, err := u.list(sfd, j.src)
	if err != nil {
		return nil, err
	}
	ds, err := u.list(dfd, j.dst)
	if err != nil {
		return nil, err
	}
	var subs []copyJob
	for len(ss) > 0 || len(ds) > 0 {
		var s, d *dirent
		switch {
		case len(ds) == 0 || len(ss) > 0 && ss[0].name < ds[0].name:
			s, ss = &ss[0], ss[1:]
		case len(ss) == 0 || ds[0].name < ss[0].name:
			d, ds = &ds[0], ds[1:]
		default:
			s, d, ss, ds = &ss[0], &ds[0], ss[1:], ds[1:]
		}
		if d != nil && (s == nil || s.st.Mode&unix.S_IFMT != d.st.Mode&unix.S_IFMT) {
			p := filepath.Join(j.dst, d.name)
			if err := os.RemoveAll(p); err != nil {
				return nil, err
			}
			u.st.Deleted++
			d = nil
		}
		if s == nil {
			continue
		}
		if err := u.entry(sfd, dfd, j, s, d, &subs); err != nil {
			return nil, err
		}
	}
	return subs, nil
}

// entry brings d (nil if dst lacks it) up to date with s.
func (u *updater) entry(sfd, dfd int, j copyJob, s, d *dirent, subs *[]copyJob) error {
	dpath := filepath.Join(j.dst, s.name)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if d == nil {
			if err := unix.Mkdirat(dfd, s.name, 0o700); err != nil {
				return &os.PathError{Op: "mkdir", Path: dpath, Err: err}
			}
			u.st.Created++
		}
		if d == nil || metaDiffers(&s.st, &d.st, u.root) {
			u.dirs = append(u.dirs, dirMeta{dpath, s.st})
		}
		*subs = append(*subs, copyJob{filepath.Join(j.src, s.name), dpath})
	case unix.S_IFREG:
		if d != nil && d.st.Size == s.st.Size && d.st.Mtim == s.st.Mtim {
			if metaDiffers(&s.st, &d.st, u.root) {
				u.st.Meta++
				return setMeta(dfd, s.name, dpath, &s.st, u.root, 0)
			}
			return nil
		}
		cname := append([]byte(s.name), 0)
		dname, tmp := cname, ""
		if d != nil {
			// The old copy stays whole until the new one replaces it, as
			// rsync does it: written under a temp name, then renamed over.
			tmp = tempName(s.name)
			dname = append([]byte(tmp), 0)
		}
		n, err := u.write(sfd, dfd, cname, dname, &s.st, j)
		if err == nil && tmp != "" {
			if err = unix.Renameat(dfd, tmp, dfd, s.name); err != nil {
				err = &os.PathError{Op: "rename", Path: dpath, Err: err}
			}
		}
		if err != nil {
			if tmp != "" {
				unix.Unlinkat(dfd, tmp, 0)
			}
			return err
		}
		u.st.Copied++
		u.st.Bytes += n
	case unix.S_IFLNK:
		if d != nil && d.st.Size == s.st.Size && d.st.Mtim == s.st.Mtim {
			return nil
		}
		buf := u.filebuf[:min(len(u.filebuf), int(s.st.Size)+1)]
		n, err := unix.Readlinkat(sfd, s.name, buf)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: filepath.Join(j.src, s.name), Err: err}
		}
		if d != nil {
			if err := unix.Unlinkat(dfd, s.name, 0); err != nil {
				return &os.PathError{Op: "unlink", Path: dpath, Err: err}
			}
		}
		if err := unix.Symlinkat(string(buf[:n]), dfd, s.name); err != nil {
			return &os.PathError{Op: "symlink", Path: dpath, Err: err}
		}
		u.st.Created++
		return setMeta(dfd, s.name, dpath, &s.st, u.root, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}
