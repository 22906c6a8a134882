// Package uring is the small part of Linux io_uring that msync uses: a ring
// per goroutine on which a batch of small files is opened, read whole and
// closed with one system call instead of three per file.
//
// On this project's VM a system call costs about 1 us just to enter and leave
// the kernel; open, read and close of a small cached file cost 7 us one call
// at a time and under 3 us as a linked chain of ring requests (see
// bench/RESULTS.md). The chain uses direct descriptors (a slot table inside
// the ring), so no file descriptor is ever made for the file.
//
// No Go module for io_uring is served to this project, so the few
// structures below are written from the kernel's uapi header
// (include/uapi/linux/io_uring.h).
package uring

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsupported says the kernel cannot run the chains this package makes
// (io_uring missing, disabled, filtered by seccomp, or older than 5.17).
var ErrUnsupported = errors.New("io_uring with linked direct descriptors is not available")

// The kernel's numbers (include/uapi/linux/io_uring.h).
const (
	opOpenat = 18
	opClose  = 19
	opRead   = 22

	sqeFixedFile = 1 << 0
	sqeIOLink    = 1 << 2
	sqeHardlink  = 1 << 3

	enterGetEvents = 1 << 0

	featSingleMmap = 1 << 0
	featLinkedFile = 1 << 12 // a linked request finds its direct descriptor when it runs

	registerFiles = 2

	offSQRing = 0
	offSQEs   = 0x10000000
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// sqe is struct io_uring_sqe (64 bytes), with the unions named as used here.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // open_flags, rw_flags
	userData    uint64
	bufIndex    uint16
	personality uint16
	fileIndex   uint32 // 1-based direct descriptor slot for openat and close
	addr3       uint64
	pad         uint64
}

// cqe is struct io_uring_cqe.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

func init() {
	if unsafe.Sizeof(sqe{}) != 64 || unsafe.Sizeof(cqe{}) != 16 || unsafe.Sizeof(params{}) != 120 {
		panic("uring: structure sizes do not match the kernel's")
	}
}

// Result is what the kernel did with one chain: the open's, the read's and
// the close's results, each a count (the read's: bytes read) or a negated
// errno. After a failed open, the read and the close are -ECANCELED.
type Result struct{ Open, Read, Close int32 }

// Ring is one io_uring instance. It runs up to its number of direct
// descriptor slots of chains per Wait. It is not safe for concurrent use.
type Ring struct {
	fd    int
	mem   []byte // the rings
	sqes  []sqe
	slots int

	sqHead, sqTail, sqMask *uint32
	sqArray                []uint32
	cqHead, cqTail, cqMask *uint32
	cqes                   []cqe

	pending  int      // requests queued since the last Wait
	inflight int      // completions not yet reaped
	results  []Result // one per chain queued since the last Wait; chain i uses slot i

	// The memory the kernel reads names from and writes contents to. It is
	// the ring's own, on the heap: the kernel reads it during Wait, long
	// after ReadChain returned, and a caller's buffer could have lived on
	// a goroutine stack that moved or was reused by then.
	names   []byte // NUL-terminated names; never grows (pointers are out)
	arena   []byte
	used    int  // bytes of arena handed out
	drained bool // a Wait ended: the next ReadChain starts the memory and results over
}

// New makes a ring that holds entries requests (a power of two), slots
// direct descriptors (so as many chains) and arena bytes of file contents
// per Wait. It fails
// with an error wrapping ErrUnsupported when the kernel cannot run linked
// chains over direct descriptors.
func New(entries uint32, slots, arena int) (*Ring, error) {
	if slots <= 0 || arena < 0 {
		return nil, fmt.Errorf("uring: %d slots, %d bytes of arena", slots, arena)
	}
	var p params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w (%w)", errno, ErrUnsupported)
	}
	r := &Ring{fd: int(fd), slots: slots, names: make([]byte, 0, slots*(unix.NAME_MAX+1)), arena: make([]byte, arena), results: make([]Result, 0, slots)}
	if p.features&featSingleMmap == 0 || p.features&featLinkedFile == 0 {
		r.Close()
		return nil, fmt.Errorf("kernel features %#x: %w", p.features, ErrUnsupported)
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	mem, err := unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("mmap io_uring rings: %w", err)
	}
	r.mem = mem
	sqesMem, err := unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("mmap io_uring requests: %w", err)
	}
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&sqesMem[0])), p.sqEntries)
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail, r.sqMask = u32(p.sqOff.head), u32(p.sqOff.tail), u32(p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32(p.sqOff.array), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = u32(p.cqOff.head), u32(p.cqOff.tail), u32(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&mem[p.cqOff.cqes])), p.cqEntries)

	table := make([]int32, slots)
	for i := range table {
		table[i] = -1 // an empty slot
	}
	_, _, errno = unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerFiles, uintptr(unsafe.Pointer(&table[0])), uintptr(slots), 0, 0)
	runtime.KeepAlive(table)
	if errno != 0 {
		r.Close()
		return nil, fmt.Errorf("io_uring_register files: %w (%w)", errno, ErrUnsupported)
	}
	return r, nil
}

// abandoned keeps the memory of rings closed with requests in flight (after
// a failed Wait): the kernel may still write into it, so it is never freed.
var (
	abandonedMu sync.Mutex
	abandoned   [][]byte
)

// Close releases the ring and every direct descriptor left in it.
func (r *Ring) Close() error {
	if r.inflight > 0 && r.arena != nil {
		abandonedMu.Lock()
		abandoned = append(abandoned, r.arena, r.names[:cap(r.names)])
		abandonedMu.Unlock()
		r.arena, r.names = nil, nil
	}
	if r.sqes != nil {
		unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&r.sqes[0])), len(r.sqes)*int(unsafe.Sizeof(sqe{}))))
		r.sqes = nil
	}
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.fd >= 0 {
		err := unix.Close(r.fd)
		r.fd = -1
		return err
	}
	return nil
}

// Free returns how many more requests fit before Wait.
func (r *Ring) Free() int { return len(r.sqes) - r.pending }

func (r *Ring) next() *sqe {
	if r.pending >= len(r.sqes) {
		panic("uring: submission queue full")
	}
	tail := atomic.LoadUint32(r.sqTail) + uint32(r.pending)
	i := tail & *r.sqMask
	r.sqArray[i] = i
	s := &r.sqes[i]
	*s = sqe{}
	r.pending++
	return s
}

// ReadChain queues three linked requests: open name (in directory dirfd,
// with flags) into a direct descriptor slot, read up to size bytes from its
// start, and close the slot. The read and the close run only after the open
// succeeded; the close runs however the read ended. It returns the ring's
// buffer the read fills, which holds what was read once Wait has returned
// and until the next ReadChain after it; the chain's Result is the next
// one in what Wait returns. It returns false, queueing nothing, when the
// requests, the slots, the names or the buffers of one Wait are used up:
// call Wait, then queue again. A name longer than NAME_MAX or holding a NUL
// is never queued.
func (r *Ring) ReadChain(dirfd int, name string, flags int, size int) ([]byte, bool) {
	if r.drained {
		r.names, r.used, r.results, r.drained = r.names[:0], 0, r.results[:0], false
	}
	slot := len(r.results)
	if slot == r.slots || r.Free() < 3 || len(name) > unix.NAME_MAX || strings.IndexByte(name, 0) >= 0 ||
		len(r.names)+len(name)+1 > cap(r.names) || size < 0 || r.used+size > len(r.arena) {
		return nil, false
	}
	r.results = append(r.results, Result{})
	start := len(r.names)
	r.names = append(append(r.names, name...), 0)
	buf := r.arena[r.used : r.used+size : r.used+size]
	r.used += size
	tag := uint64(slot)

	o := r.next()
	o.opcode = opOpenat
	o.flags = sqeIOLink
	o.fd = int32(dirfd)
	o.addr = uint64(uintptr(unsafe.Pointer(&r.names[start])))
	o.opFlags = uint32(flags)
	o.fileIndex = uint32(slot) + 1
	o.userData = tag * 4

	rd := r.next()
	rd.opcode = opRead
	rd.flags = sqeFixedFile | sqeHardlink
	rd.fd = int32(slot)
	if size > 0 {
		rd.addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
	}
	rd.len = uint32(size)
	rd.userData = tag*4 + 1

	c := r.next()
	c.opcode = opClose
	c.fileIndex = uint32(slot) + 1
	c.userData = tag*4 + 2
	return buf, true
}

// Wait submits what was queued, waits until every request has completed,
// and returns one Result per chain, in the order they were queued (valid
// until the next ReadChain). After an error the ring is of no further use:
// Close it.
func (r *Ring) Wait() ([]Result, error) {
	if r.pending > 0 {
		atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+uint32(r.pending))
		r.inflight += r.pending
	}
	toSubmit := r.pending
	r.pending = 0
	r.drained = true
	for r.inflight > 0 || toSubmit > 0 {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), 1, enterGetEvents, 0, 0)
		if errno == unix.EINTR || errno == unix.EAGAIN || errno == unix.EBUSY {
			r.reap()
			continue
		}
		if errno != 0 {
			return nil, os.NewSyscallError("io_uring_enter", errno)
		}
		toSubmit -= int(n)
		r.reap()
	}
	return r.results, nil
}

// reap files the completions the kernel has posted into r.results: the
// user data of a request is its chain's index times 4 plus 0 (open), 1
// (read) or 2 (close).
func (r *Ring) reap() {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		c := r.cqes[head&*r.cqMask]
		r.inflight--
		if i := int(c.userData / 4); i < len(r.results) {
			switch c.userData % 4 {
			case 0:
				r.results[i].Open = c.res
			case 1:
				r.results[i].Read = c.res
			case 2:
				r.results[i].Close = c.res
			}
		}
	}
	atomic.StoreUint32(r.cqHead, head)
}
