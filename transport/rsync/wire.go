// Package rsync speaks the stock rsync protocol (version 27, which every
// rsync from 2.6.0 to 3.5 accepts), with msync's own implementation of it,
// so that a host that only has rsync is a first-class end: msync pulls from
// its daemon (rsync://host/module/path) or its `rsync --server --sender`
// over a remote shell, pushes into it, verifies against it (rsync's MD4 of
// every file), and serves stock clients (Server, ServeShell). A received
// file list becomes a scan in manifest order, each file the engine asks for
// crosses as an rsync delta checked against rsync's whole-file MD4, and a
// pass commits manifests like any other.
//
// Everything read from the peer is bounded: name and symlink lengths, token
// sizes, message lengths, counts. Nothing here trusts the sender's paths:
// absolute names, "..", and names that would escape the tree are refused.
package rsync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
)

// ProtocolVersion is the rsync protocol msync speaks.
const ProtocolVersion = 27

// Multiplexed message tags (rsync's MSG_*), as they appear on the wire
// after subtracting mplexBase.
const (
	mplexBase   = 7
	msgData     = 0
	msgErrXfer  = 1
	msgInfo     = 2
	msgError    = 3
	msgWarning  = 4
	msgErrSock  = 5
	msgLog      = 6
	msgClient   = 7
	msgErrUTF8  = 8
	msgIOError  = 22
	msgNoop     = 42
	msgErrExit  = 86
	maxMsgBytes = 1<<24 - 1
)

// Limits on what the peer may send.
const (
	maxPath    = 4096    // bytes of one name or symlink target
	maxToken   = 1 << 24 // bytes of one literal token
	maxEntries = 1 << 26 // entries in one file list
)

// ErrProtocol marks a peer that broke the protocol.
var ErrProtocol = errors.New("rsync protocol error")

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, a...)...)
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// muxReader reads the data stream of rsync's multiplexed channel and hands
// every other message to onMsg.
type muxReader struct {
	r      io.Reader
	left   int // data bytes left in the current message
	hdr    [4]byte
	onMsg  func(tag byte, msg []byte) error
	msgBuf []byte
}

func (m *muxReader) Read(p []byte) (int, error) {
	for m.left == 0 {
		if _, err := io.ReadFull(m.r, m.hdr[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			return 0, err
		}
		h := binary.LittleEndian.Uint32(m.hdr[:])
		tag, n := byte(h>>24), int(h&0xffffff)
		if tag < mplexBase {
			return 0, protoErr("bad multiplex header %#08x", h)
		}
		tag -= mplexBase
		if tag == msgData {
			m.left = n
			continue
		}
		if cap(m.msgBuf) < n {
			m.msgBuf = make([]byte, n)
		}
		b := m.msgBuf[:n]
		if _, err := io.ReadFull(m.r, b); err != nil {
			return 0, fmt.Errorf("reading a message from the peer: %w", err)
		}
		if err := m.onMsg(tag, b); err != nil {
			return 0, err
		}
	}
	if len(p) > m.left {
		p = p[:m.left]
	}
	n, err := m.r.Read(p)
	m.left -= n
	if err == io.EOF && m.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// decoder reads rsync's basic types.
type decoder struct {
	r   *bufio.Reader
	buf [8]byte
}

func (d *decoder) byte() (byte, error) { return d.r.ReadByte() }

func (d *decoder) int32() (int32, error) {
	if _, err := io.ReadFull(d.r, d.buf[:4]); err != nil {
		return 0, err
	}
	return int32(binary.LittleEndian.Uint32(d.buf[:4])), nil
}

// longint is rsync's int64: an int32, or -1 followed by 8 bytes.
func (d *decoder) longint() (int64, error) {
	v, err := d.int32()
	if err != nil || v != -1 {
		return int64(v), err
	}
	if _, err := io.ReadFull(d.r, d.buf[:8]); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(d.buf[:8])), nil
}

// bytes reads n bytes, n bounded by the caller.
func (d *decoder) bytes(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(d.r, b)
	return b, err
}

// encoder writes rsync's basic types.
type encoder struct {
	w *bufio.Writer
}

func (e *encoder) int32(v int32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(v))
	e.w.Write(b[:])
}

// filterRules encodes exclude patterns as rsync's filter list: each rule
// as a length and "- pattern", then a zero length.
func (e *encoder) filterRules(excludes []string) error {
	for _, p := range excludes {
		if p == "" || strings.ContainsAny(p, "\n\x00") || len(p) > maxPath {
			return fmt.Errorf("exclude pattern %q cannot be sent to rsync", p)
		}
		r := "- " + p
		e.int32(int32(len(r)))
		e.w.WriteString(r)
	}
	e.int32(0)
	return nil
}
