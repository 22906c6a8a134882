// Package wire is the framing of msync's own protocol between two msync
// processes (over ssh stdio or TCP): a versioned handshake, then frames of
// a fixed 9-byte header and a bounded payload. Message payloads have wire
// types here and are converted to and from the domain types (send.Request,
// send.Result, manifest.Entry) by the encoders in msg.go. Every length read
// from the peer is checked before anything is allocated for it.
package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// Protocol versions: a peer speaking any version in [MinVersion, Version]
// is accepted and the lower of the two versions is used.
const (
	Version    = 1
	MinVersion = 1
)

// Feature bits exchanged in the handshake; both sides use the intersection.
const (
	FeatZstd     uint64 = 1 << 0 // data frames may be zstd-compressed (TDataZ)
	FeatScanDiff uint64 = 1 << 1 // scans may be sent as diffs against a base both ends keep

	KnownFeatures = FeatZstd | FeatScanDiff
)

const magic = "MSYNCWIR"

// HelloSize is the size of a hello message.
const HelloSize = 8 + 2 + 2 + 8

// Hello is what each side announces first.
type Hello struct {
	Version, MinVersion uint16
	Features            uint64
}

// ErrProtocol is wrapped by every error about malformed input from the peer.
var ErrProtocol = errors.New("protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// AppendHello encodes h.
func AppendHello(b []byte, h Hello) []byte {
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, h.Version)
	b = binary.LittleEndian.AppendUint16(b, h.MinVersion)
	return binary.LittleEndian.AppendUint64(b, h.Features)
}

// ParseHello decodes a hello; b must hold HelloSize bytes.
func ParseHello(b []byte) (Hello, error) {
	if len(b) < HelloSize || string(b[:8]) != magic {
		return Hello{}, protoErr("the peer is not speaking msync's protocol (it sent %q); is msync installed on the far side (see --remote-msync)?", printable(b))
	}
	h := Hello{
		Version:    binary.LittleEndian.Uint16(b[8:]),
		MinVersion: binary.LittleEndian.Uint16(b[10:]),
		Features:   binary.LittleEndian.Uint64(b[12:]),
	}
	if h.MinVersion > h.Version {
		return Hello{}, protoErr("peer announces versions %d..%d", h.MinVersion, h.Version)
	}
	return h, nil
}

// firstLine completes the first line of what a stranger sent, waiting a
// little for the rest of it.
func firstLine(b []byte, r io.Reader) string {
	line := append([]byte(nil), b...)
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		return string(line[:i])
	}
	more := make(chan []byte, 1)
	go func() {
		var rest []byte
		var c [1]byte
		for len(rest) < 200 {
			if n, err := r.Read(c[:]); n == 0 || err != nil || c[0] == '\n' {
				break
			}
			rest = append(rest, c[0])
		}
		more <- rest
	}()
	select {
	case rest := <-more:
		line = append(line, rest...)
	case <-time.After(time.Second):
	}
	return string(line)
}

func printable(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// Negotiate returns the version and features both sides use.
func Negotiate(ours, theirs Hello) (uint16, uint64, error) {
	v := min(ours.Version, theirs.Version)
	if v < ours.MinVersion || v < theirs.MinVersion {
		return 0, 0, fmt.Errorf("protocol versions do not overlap: this msync speaks %d..%d, the peer %d..%d; install the same msync release on both hosts",
			ours.MinVersion, ours.Version, theirs.MinVersion, theirs.Version)
	}
	return v, ours.Features & theirs.Features, nil
}

// Handshake sends our hello on w and reads the peer's from r.
func Handshake(r io.Reader, w io.Writer, ours Hello) (version uint16, features uint64, err error) {
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(AppendHello(nil, ours))
		errc <- err
	}()
	var buf [HelloSize]byte
	n, rerr := io.ReadFull(r, buf[:])
	if rerr != nil {
		if n > 0 {
			return 0, 0, protoErr("the peer is not speaking msync's protocol (it sent %q and stopped)", buf[:n])
		}
		return 0, 0, fmt.Errorf("no answer from the peer: %w", rerr)
	}
	if err := <-errc; err != nil {
		return 0, 0, fmt.Errorf("send hello: %w", err)
	}
	theirs, err := ParseHello(buf[:])
	if err != nil {
		// Probably a shell's or a program's message: show its first line.
		return 0, 0, protoErr("the peer is not speaking msync's protocol (it sent %q); is msync installed on the far side (see --remote-msync)?", firstLine(buf[:], r))
	}
	return Negotiate(ours, theirs)
}

// Type is a frame's message type.
type Type uint8

// Message types; their values are part of the protocol.
const (
	TOpen     Type = 1  // client -> server, JSON OpenRequest
	TOpenOK   Type = 2  // server -> client, JSON OpenReply
	TError    Type = 3  // either way: a fatal error, text; the sender closes
	TScanReq  Type = 4  // JSON ScanRequest; Stream is the scan's id
	TScanData Type = 5  // a chunk of the scan, in msync's manifest format
	TScanEnd  Type = 6  // JSON ScanEnd
	TCredit   Type = 7  // uvarint: more scan bytes the receiver can buffer
	THashErr  Type = 8  // path and error of a file a hashing scan could not read
	TFetch    Type = 9  // a file request (EncodeFetch); Stream is its id
	TSig      Type = 10 // a chunk of the signature of the next TFetch on Stream
	TData     Type = 11 // a chunk of a file's delta operations
	TDataZ    Type = 12 // the same, zstd-compressed
	TEnd      Type = 13 // a file's outcome (EncodeEnd)
	TItem     Type = 14 // push: one itemized change
	TLog      Type = 15 // push: a line for the user's terminal
	TProgress Type = 16 // push: live counters
	TResult   Type = 17 // push: JSON result of the pass; the last frame

	maxType = TResult
)

var typeNames = [...]string{"", "open", "open-ok", "error", "scan-request", "scan-data", "scan-end", "credit",
	"hash-error", "fetch", "signature", "data", "data-z", "end", "item", "log", "progress", "result"}

func (t Type) String() string {
	if t >= 1 && t <= maxType {
		return typeNames[t]
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Frame limits.
const (
	HeaderSize = 9
	// MaxPayload bounds a frame's payload.
	MaxPayload = 1<<20 + 1024
	// ChunkSize is the payload size writers aim for.
	ChunkSize = 256 << 10
)

// Frame is one message.
type Frame struct {
	Type    Type
	Stream  uint32
	Payload []byte
}

// AppendHeader encodes the header of a frame with n payload bytes.
func AppendHeader(b []byte, t Type, stream uint32, n int) []byte {
	b = append(b, byte(t))
	b = binary.LittleEndian.AppendUint32(b, stream)
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// Reader reads frames.
type Reader struct {
	r   *bufio.Reader
	buf []byte
	n   atomic.Int64 // read by BytesRead from any goroutine
}

// NewReader returns a frame reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 256<<10)} }

// BytesRead returns the bytes read so far; it may be called while another
// goroutine reads frames.
func (r *Reader) BytesRead() int64 { return r.n.Load() }

// Next reads one frame. Its payload is valid until the next call. At a
// clean end of stream between frames it returns io.EOF.
func (r *Reader) Next() (Frame, error) {
	var h [HeaderSize]byte
	n, err := io.ReadFull(r.r, h[:])
	r.n.Add(int64(n))
	if err != nil {
		if err == io.EOF {
			return Frame{}, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("connection closed inside a frame header: %w", io.ErrUnexpectedEOF)
		}
		return Frame{}, err
	}
	t := Type(h[0])
	if t < 1 || t > maxType {
		return Frame{}, protoErr("unknown frame type %d", h[0])
	}
	size := binary.LittleEndian.Uint32(h[5:])
	if size > MaxPayload {
		return Frame{}, protoErr("%s frame of %d bytes exceeds the %d-byte limit", t, size, MaxPayload)
	}
	if cap(r.buf) < int(size) {
		r.buf = make([]byte, size, max(int(size), 64<<10))
	}
	p := r.buf[:size]
	n, err = io.ReadFull(r.r, p)
	r.n.Add(int64(n))
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("connection closed inside a %s frame: %w", t, io.ErrUnexpectedEOF)
		}
		return Frame{}, err
	}
	return Frame{Type: t, Stream: binary.LittleEndian.Uint32(h[1:]), Payload: p}, nil
}
