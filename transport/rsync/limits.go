package rsync

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/msync/msync/internal/netx"
)

// Limits bound what clients of the daemon may hold. Zero fields take
// netx's defaults; negative durations mean none.
type Limits struct {
	MaxConns  int           // connections served at once
	Handshake time.Duration // from connecting to the request read
	Idle      time.Duration // with nothing read or written
	// FileList bounds the memory a pushed file list may take, in bytes
	// (names and entries); zero means DefaultFileListBytes.
	FileList int64
}

func (l Limits) config(log io.Writer) netx.Config {
	return netx.Config{Name: "rsync serve", Log: log, MaxConns: l.MaxConns, Handshake: l.Handshake, Idle: l.Idle,
		Refuse: refuseFull}
}

// refuseFull turns a client away as rsyncd does when a module is full:
// after the greetings, an @ERROR line the client prints (it exits 5).
func refuseFull(nc net.Conn, max int) {
	fmt.Fprintf(nc, "@RSYNCD: %d.0\n", ProtocolVersion)
	br := bufio.NewReaderSize(nc, 4096)
	if _, err := readLine(br); err != nil { // the client's greeting
		return
	}
	readLine(br) // the module it asks for
	fmt.Fprintf(nc, "@ERROR: max connections (%d) reached -- try again later\n", max)
	netx.CloseWrite(nc)
	nc.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(nc, 1<<20))
}

// DefaultFileListBytes bounds the memory of a file list a client pushes
// to msync's daemon: about a million entries with names of typical length.
const DefaultFileListBytes = 512 << 20

// clientFileListBytes bounds the memory of a file list msync pulls from an
// rsync server the user named, or one pushed through a remote shell that
// authenticated its client: some 16 million entries.
const clientFileListBytes = 8 << 30

// maxRecvBlocks bounds the block sums a receiver may send for one file:
// a basis of 4 TB at rsync's square-root block length, about 120 MB of
// table in memory.
const maxRecvBlocks = 1 << 21

// entryCost is what one received file-list entry takes in memory beside
// its name and link target: the wire entry, its manifest entry, and their
// slots in the list's slices and maps (measured: see TestFileListBudget).
const entryCost = 448

// listBudget counts the memory a file list being received takes.
type listBudget struct{ used, max int64 }

func newListBudget(max int64) *listBudget {
	if max <= 0 {
		max = DefaultFileListBytes
	}
	return &listBudget{max: max}
}

// add counts f, or says the list is over its budget.
func (b *listBudget) add(f *file) error {
	n := int64(entryCost + len(f.link) + len(f.name))
	if f.name != f.wire {
		n += int64(len(f.wire))
	}
	if b.used += n; b.used > b.max {
		return fmt.Errorf("the file list needs more than %d MiB of memory (msync serve --rsync: see --max-file-list-mib)", b.max>>20)
	}
	return nil
}
