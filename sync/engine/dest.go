package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/scan"
	"golang.org/x/sys/unix"
)

// dest applies changes to the destination tree. Every operation works on a
// directory descriptor and a single name, creates new objects under a
// temporary name and renames them into place, so that nothing half-made is
// ever visible under a real name.
type dest struct {
	root    *fsx.Root
	owners  bool
	xattrNS []string
	fsync   FsyncPolicy
	tag     string // the migration's temp tag (tempName)
	// inheritedACL is set once a directory at either end was seen with a
	// default ACL (or the destination's parent has one): a new file may
	// then have inherited an access ACL that finishFile must remove.
	inheritedACL atomic.Bool
}

func pathErr(op string, root *fsx.Root, rel string, err error) error {
	return &os.PathError{Op: op, Path: root.Join(rel), Err: err}
}

// watchACL sets inheritedACL when the destination's root (made by the
// pass in a directory with a default ACL, or so set) has a default ACL.
// It reads it through the root's descriptor: a daemon's DST is named by a
// module path, which is no path on its host.
func (d *dest) watchACL() {
	if fsx.HasACLs(d.xattrNS) {
		if _, err := unix.Fgetxattr(d.root.Fd(), manifest.ACLDefault, nil); err == nil {
			d.inheritedACL.Store(true)
		}
	}
}

// seeACL sets inheritedACL when s or t, the source and destination
// entries of one path, is a directory with a default ACL. The planner
// sees a directory before the files made in it.
func (d *dest) seeACL(s, t *manifest.Entry) {
	if defaultACL(s) || defaultACL(t) {
		d.inheritedACL.Store(true)
	}
}

func defaultACL(e *manifest.Entry) bool {
	return e != nil && e.Type == manifest.TypeDir && len(e.Xattrs) > 0 && manifest.HasXattr(e.Xattrs, manifest.ACLDefault)
}

// createTemp makes an empty temp file in directory dirfd.
func (d *dest) createTemp(dirfd int) (*tmpFile, string, error) {
	for range 5 {
		name := d.tempName()
		fd, err := unix.Openat(dirfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return &tmpFile{fd: fd, mode: noMode}, name, nil // has a name: finishFile sets the mode before it is renamed
	}
	return nil, "", errors.New("cannot create a unique temporary file")
}

// createAnon makes an unnamed file in directory dirfd (O_TMPFILE). It has
// no name until finishFile links it in, so a killed pass leaves nothing
// behind, and a new file costs one directory operation instead of two
// (create and rename). It fails on file systems without O_TMPFILE.
//
// The file is made with the permission bits it will end with (mode, the
// source's), so that finishFile need not set them again: one system call
// less per new file. No one can open it before it is linked in, and by
// then it has its owner too. Bits that a chown clears (setuid, setgid)
// and the sticky bit are set by finishFile as before.
func (d *dest) createAnon(dirfd int, mode uint32) (*tmpFile, error) {
	perm := uint32(0o600)
	if mode&^0o777 == 0 {
		perm = mode
	}
	fd, err := unix.Openat(dirfd, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, perm)
	if err != nil {
		return nil, err
	}
	return &tmpFile{fd: fd, mode: createdMode(perm)}, nil
}

// processUmask is fsx.Umask; tests make it lie.
var processUmask = fsx.Umask

// createdMode returns the permission bits a file made now with perm gets:
// perm less the umask, or noMode when the umask is unknown. A default ACL
// on the directory takes the umask's place; finishFile checks the mode
// the file ended with, and sets it when that guess was wrong.
func createdMode(perm uint32) uint32 {
	mask, ok := processUmask()
	if !ok {
		return noMode
	}
	return perm &^ mask
}

// noEmptyPath is set once linkat(AT_EMPTY_PATH) turned out not to be
// allowed to this process.
var noEmptyPath atomic.Bool

// linkAnon gives the unnamed file open as fd the name name in dirfd.
// linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH (root has it) and costs
// less than the portable way, a link of its /proc/self/fd path (17 vs 22
// us per file on tmpfs here), which is what an unprivileged process uses.
func linkAnon(fd, dirfd int, name string) error {
	if !noEmptyPath.Load() {
		err := unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH)
		if err != unix.ENOENT && err != unix.EPERM && err != unix.EINVAL {
			return err
		}
		// Refused, or a real ENOENT: the /proc way tells them apart.
	}
	err := unix.Linkat(unix.AT_FDCWD, fsx.ProcPath(fd, ""), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	if err == nil {
		noEmptyPath.Store(true)
	}
	return err
}

// futimens sets the mtime of an open file, leaving the atime.
func futimens(fd int, mtime int64) error {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime)}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// finishFile sets the metadata of a complete file, syncs it when the policy
// asks, and puts it in place as name: a temp file (tmp) is renamed over it;
// an unnamed one (tmp == "") is linked in, through a temp name if name
// exists by now. When st is not nil and the file was linked in as name, it
// is fstat'ed there, as it now is at name (the link set its ctime; nothing
// after does), and finishFile reports true: the caller need not look name
// up again.
func (d *dest) finishFile(f *tmpFile, dirfd int, tmp, name string, e *manifest.Entry, st *unix.Stat_t) (bool, error) {
	fd := f.fd
	if d.owners {
		if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
			return false, fmt.Errorf("chown: %w", err)
		}
	}
	// made with its mode (createAnon): checked below, once linked in
	unsure := f.mode == e.Mode
	if !unsure {
		if err := unix.Fchmod(fd, e.Mode); err != nil {
			return false, fmt.Errorf("chmod: %w", err)
		}
	}
	if len(d.xattrNS) > 0 {
		for _, x := range e.Xattrs {
			if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
				return false, fsx.SetXattrError("setxattr", x.Name, "", err)
			}
		}
		// A file made in a directory with a default ACL got an access
		// ACL from it, which the source's file may not have.
		if d.inheritedACL.Load() && !manifest.HasXattr(e.Xattrs, manifest.ACLAccess) && fsx.HasACLs(d.xattrNS) {
			if err := unix.Fremovexattr(fd, manifest.ACLAccess); err != nil && err != unix.ENODATA && err != unix.EOPNOTSUPP {
				return false, fsx.SetXattrError("removexattr", manifest.ACLAccess, "", err)
			}
		}
	}
	if err := futimens(fd, e.Mtime); err != nil {
		return false, fmt.Errorf("set mtime: %w", err)
	}
	if d.fsync == FsyncFile {
		if err := f.Sync(); err != nil {
			return false, fmt.Errorf("fsync: %w", err)
		}
	}
	if tmp == "" {
		err := linkAnon(fd, dirfd, name)
		if err == unix.EEXIST {
			if unsure {
				if err := unix.Fchmod(fd, e.Mode); err != nil {
					return false, fmt.Errorf("chmod: %w", err)
				}
			}
			tmp = d.tempName()
			err = linkAnon(fd, dirfd, tmp)
		} else if err == nil {
			if st == nil && unsure {
				st = new(unix.Stat_t)
			}
			statted := st != nil && unix.Fstat(fd, st) == nil
			if unsure && (!statted || st.Mode&0o7777 != e.Mode) {
				// A default ACL, or a umask that changed, made it
				// otherwise; never wider than e.Mode, so nothing was
				// exposed meanwhile.
				if err := unix.Fchmod(fd, e.Mode); err != nil {
					f.Close()
					return false, fmt.Errorf("chmod: %w", err)
				}
				statted = unix.Fstat(fd, st) == nil
			}
			return statted, f.Close()
		}
		if err != nil {
			return false, fmt.Errorf("link into place: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("close: %w", err)
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return false, fmt.Errorf("rename into place: %w", err)
	}
	return false, nil
}

// ownerWritable gives its owner full access to the directory name in
// dirfd (dirfd itself when name is ""), keeping its other mode bits as
// they are now. Like setMeta it pins the object with O_PATH|O_NOFOLLOW,
// checks that it is a directory and chmods through that descriptor: a name
// swapped for a symlink since it was scanned or recorded is refused, never
// followed out of DST, and no mode bit comes from a scan or a manifest.
func ownerWritable(dirfd int, name string) error {
	flags := unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if name == "" {
		name = "."
		flags = unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC
	}
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.ENOTDIR
	}
	if st.Mode&0o700 == 0o700 {
		return nil
	}
	return unix.Chmod(fsx.ProcPath(fd, ""), st.Mode&0o7777|0o700)
}

// setMeta makes owner, mode, xattrs and mtime of an existing object match e.
// Every step works on dirfd+name without following a final symlink; for
// anything but a symlink the object is first pinned with O_PATH|O_NOFOLLOW
// and its type checked, so a name swapped for a symlink is refused, and its
// owner, mode (after chown, which clears setuid) and mtime set through the
// pinned descriptor. xattrs are still set by name (never following it).
func (d *dest) setMeta(dirfd int, name string, e *manifest.Entry) error {
	pinned := -1
	if e.Type != manifest.TypeSymlink {
		fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if t := scan.FromStat("", &st).Type; t != e.Type {
			return fmt.Errorf("is a %s now, expected a %s", t, e.Type)
		}
		pinned = fd
	}
	if d.owners {
		// Through the pinned descriptor: a name swapped since, even for
		// a hard link to a file elsewhere, is not what gets chown'ed.
		at, atName, flags := dirfd, name, unix.AT_SYMLINK_NOFOLLOW
		if pinned >= 0 {
			at, atName, flags = pinned, "", unix.AT_EMPTY_PATH
		}
		if err := unix.Fchownat(at, atName, int(e.UID), int(e.GID), flags); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if pinned >= 0 {
		if err := unix.Chmod(fsx.ProcPath(pinned, ""), e.Mode); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	// user. xattrs exist only on files and directories, ACLs on anything
	// but symlinks; root sets the trusted. and security. namespaces of
	// symlinks too.
	if len(d.xattrNS) > 0 && (e.Type != manifest.TypeSymlink || os.Geteuid() == 0) {
		if err := fsx.SetXattrs(fsx.ProcPath(dirfd, name), e.Xattrs, d.xattrNS); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(e.Mtime)}
	at, atName, flags := dirfd, name, unix.AT_SYMLINK_NOFOLLOW
	if pinned >= 0 {
		at, atName, flags = unix.AT_FDCWD, fsx.ProcPath(pinned, ""), 0
	}
	if err := unix.UtimesNanoAt(at, atName, ts, flags); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// makeSpecial creates a symlink, fifo, socket or device node as e under a temp name
// and renames it over name.
func (d *dest) makeSpecial(dirfd int, name string, e *manifest.Entry) error {
	tmp := d.tempName()
	var err error
	switch e.Type {
	case manifest.TypeSymlink:
		err = unix.Symlinkat(e.LinkTarget, dirfd, tmp)
	case manifest.TypeFifo:
		err = unix.Mknodat(dirfd, tmp, unix.S_IFIFO|0o600, 0)
	case manifest.TypeSocket:
		// As rsync -D makes one: a socket node no process listens on
		// (any user may make one, as a fifo).
		err = unix.Mknodat(dirfd, tmp, unix.S_IFSOCK|0o600, 0)
	case manifest.TypeChar:
		err = unix.Mknodat(dirfd, tmp, unix.S_IFCHR|0o600, int(e.Rdev))
	case manifest.TypeBlock:
		err = unix.Mknodat(dirfd, tmp, unix.S_IFBLK|0o600, int(e.Rdev))
	default:
		return fmt.Errorf("cannot create a %s", e.Type)
	}
	if err != nil {
		return err
	}
	if err := d.setMeta(dirfd, tmp, e); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return err
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("rename into place: %w", err)
	}
	return nil
}

// link makes name in newdirfd a hard link to target (another path of the
// same tree), replacing whatever is there atomically.
func (d *dest) link(dirs *fsx.Dirs, target, p string) error {
	tdir, tname, err := dirs.At(target)
	if err != nil {
		return err
	}
	// Link at a temp name first: linkat cannot replace an existing name.
	tfd, err := unix.Dup(tdir)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	pdir, pname, err := dirs.At(p)
	if err != nil {
		return err
	}
	tmp := d.tempName()
	if err := unix.Linkat(tfd, tname, pdir, tmp, 0); err != nil {
		return fmt.Errorf("link to %s: %w", target, err)
	}
	if err := unix.Renameat(pdir, tmp, pdir, pname); err != nil {
		unix.Unlinkat(pdir, tmp, 0)
		return fmt.Errorf("rename into place: %w", err)
	}
	return nil
}

// removeAll removes the object at rel, recursively for directories, never
// following symlinks.
func removeAll(dirs *fsx.Dirs, rel string) error {
	dfd, name, err := dirs.At(rel)
	if err != nil {
		return err
	}
	err = unix.Unlinkat(dfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	if err := removeContents(dfd, name); err != nil {
		return err
	}
	dirs.Forget(rel)
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}

func removeContents(parent int, name string) error {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if os.Geteuid() != 0 {
		// A read-only directory of ours must become writable to empty it.
		unix.Fchmod(fd, 0o700)
	}
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if err := unix.Unlinkat(fd, n, 0); err == nil || err == unix.ENOENT {
				continue
			} else if err != unix.EISDIR && err != unix.EPERM {
				return err
			}
			if err := removeContents(fd, n); err != nil {
				return err
			}
			if err := unix.Unlinkat(fd, n, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
				return err
			}
		}
		if err == io.EOF || len(names) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
