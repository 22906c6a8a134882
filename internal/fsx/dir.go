package fsx

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DirBufSize is a good size for the buffer of ReadDir: a few hundred names
// per getdents call.
const DirBufSize = 32 << 10

// ReadDir reads directory fd from its start with getdents and calls fn with
// each name but "." and "..", in the directory's order. cname is the name
// followed by the NUL the kernel wrote after it (for Lstatat); both are only
// valid during the call. buf holds the records of one getdents call.
func ReadDir(fd int, buf []byte, fn func(cname []byte) error) error {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return fmt.Errorf("rewind: %w", err)
	}
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		// linux_dirent64: inode (8), offset (8), record length (2), type (1),
		// then the NUL-terminated name, padded to 8 bytes.
		for off := 0; off < n; {
			if off+19 >= n {
				return fmt.Errorf("getdents: truncated record at %d of %d bytes", off, n)
			}
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen < 20 || off+reclen > n {
				return fmt.Errorf("getdents: bad record length %d", reclen)
			}
			rec := buf[off+19 : off+reclen]
			off += reclen
			end := 0
			for end < len(rec) && rec[end] != 0 {
				end++
			}
			if end == len(rec) || end == 0 {
				return fmt.Errorf("getdents: record without a name")
			}
			if rec[0] == '.' && (end == 1 || end == 2 && rec[1] == '.') {
				continue
			}
			if err := fn(rec[:end+1]); err != nil {
				return err
			}
		}
	}
}

// Lstatat is fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) for a
// NUL-terminated name, as ReadDir passes it: nothing is allocated.
func Lstatat(dirfd int, cname []byte, st *unix.Stat_t) error {
	if len(cname) < 2 || cname[len(cname)-1] != 0 {
		return unix.EINVAL
	}
	_, _, errno := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(&cname[0])), uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
