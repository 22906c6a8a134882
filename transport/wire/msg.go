package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"syscall"

	"github.com/msync/msync/delta"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/send"
)

// Limits on what a peer may send.
const (
	MaxSignature = 64 << 20 // bytes of one file's signature (1M blocks)
	maxErrText   = 4096
	maxOpName    = 64
	maxJSON      = MaxPayload
)

// OpenRequest is the first message of a connection. Op is "source" (serve
// Path as the source of a pass or verification run by the client) or
// "receive" (run a pass into Path whose source the client serves).
type OpenRequest struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Token string `json:"token,omitempty"` // TCP daemon modules with --auth-token-file
	// Compress asks the serving end to compress the file data it sends
	// (when FeatZstd was negotiated).
	Compress bool         `json:"compress,omitempty"`
	Pass     *PassOptions `json:"pass,omitempty"` // receive
}

// PassOptions is the wire form of a pass's options (engine.Options).
type PassOptions struct {
	Kind             string   `json:"kind"`
	SrcName          string   `json:"src_name"`
	StateDir         string   `json:"state_dir,omitempty"` // over ssh only: a daemon refuses it (remote.ServerConfig.StateDir)
	Final            bool     `json:"final,omitempty"`
	DryRun           bool     `json:"dry_run,omitempty"`
	TrustDest        bool     `json:"trust_dest,omitempty"`
	DeleteExtraneous bool     `json:"delete_extraneous,omitempty"`
	Exclude          []string `json:"exclude,omitempty"`
	Xattrs           bool     `json:"xattrs,omitempty"`
	Sparse           bool     `json:"sparse,omitempty"`
	Owners           bool     `json:"owners,omitempty"`
	OwnersAuto       bool     `json:"owners_auto,omitempty"` // copy owners when the receiver runs as root
	Fsync            string   `json:"fsync,omitempty"`
	Delta            string   `json:"delta,omitempty"`
	Workers          int      `json:"workers,omitempty"`
	Itemize          bool     `json:"itemize,omitempty"`
	Progress         bool     `json:"progress,omitempty"`
	// Class is the dataset's class (sync/class) and MaxAgeSeconds its
	// max_age: the receiving end applies the class's rules.
	Class         string `json:"class,omitempty"`
	MaxAgeSeconds int64  `json:"max_age_seconds,omitempty"`
}

// OpenReply accepts an OpenRequest.
type OpenReply struct {
	Path string `json:"path"` // the root as the server resolved it, for messages
}

// ScanRequest asks for a scan of the served tree.
type ScanRequest struct {
	Exclude []string `json:"exclude,omitempty"`
	Xattrs  []string `json:"xattrs,omitempty"`
	Hash    bool     `json:"hash,omitempty"`
	Workers int      `json:"workers,omitempty"`
	// Base is the Sum (hex) of the last full scan the receiver keeps: the
	// server may answer with a diff against it (FeatScanDiff).
	Base string `json:"base,omitempty"`
}

// ScanProblem is a path a scan could not read.
type ScanProblem struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// ScanEnd closes a scan.
type ScanEnd struct {
	Problems []ScanProblem `json:"problems,omitempty"`
	Sum      string        `json:"sum,omitempty"`   // of the full scan, for the receiver to keep as its next base
	Err      string        `json:"error,omitempty"` // the scan failed as a whole
}

// EncodeJSON encodes a control message, refusing one too large for a frame.
func EncodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > maxJSON {
		return nil, fmt.Errorf("control message of %d bytes exceeds the frame limit", len(b))
	}
	return b, nil
}

// DecodeJSON decodes a control message.
func DecodeJSON(p []byte, v any) error {
	if err := json.Unmarshal(p, v); err != nil {
		return protoErr("malformed control message: %v", err)
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = protoErr("malformed %s", what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bounded(what string, max uint64) uint64 {
	v := d.uvarint(what)
	if v > max {
		d.fail(what)
		return 0
	}
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) u64(what string) uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) str(what string, max uint64) string {
	n := d.bounded(what, max)
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail(what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(what + " (trailing bytes)")
	}
	return d.err
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// The bytes that stand for a request's mode (send.Mode) and a request's
// outcome (send.Status) in TFetch and TEnd frames. msync's protocol fixes
// them here, whatever values the domain types take: modeByte and
// statusByte encode, DecodeFetch and DecodeEnd decode.
const (
	modeWhole  byte = 0
	modeAppend byte = 1
	modeDelta  byte = 2

	statusOK            byte = 0
	statusChanged       byte = 1
	statusPrefixChanged byte = 2
	statusFailed        byte = 3

	badByte byte = 0xff // an unknown domain value: the peer refuses it
)

func modeByte(m send.Mode) byte {
	switch m {
	case send.Whole:
		return modeWhole
	case send.Append:
		return modeAppend
	case send.Delta:
		return modeDelta
	}
	return badByte
}

func statusByte(s send.Status) byte {
	switch s {
	case send.OK:
		return statusOK
	case send.Changed:
		return statusChanged
	case send.PrefixChanged:
		return statusPrefixChanged
	case send.Failed:
		return statusFailed
	}
	return badByte
}

// EncodeFetch encodes a file request; a Delta request's signature travels
// separately, in TSig frames sent before it (see SigChunks).
func EncodeFetch(r *send.Request) []byte {
	b := appendStr(nil, r.Path)
	b = binary.AppendUvarint(b, uint64(r.Size))
	b = binary.AppendVarint(b, r.Mtime)
	b = binary.AppendVarint(b, r.Ctime)
	b = binary.AppendUvarint(b, r.Inode)
	b = append(b, modeByte(r.Mode))
	if r.Mode == send.Append {
		b = binary.AppendUvarint(b, uint64(r.BasisSize))
		b = binary.LittleEndian.AppendUint64(b, r.BasisHash)
	}
	return b
}

// DecodeFetch decodes a file request. sig holds the TSig bytes received
// before it on the same stream (for Delta).
func DecodeFetch(p []byte, sig []byte) (*send.Request, error) {
	d := decoder{b: p}
	r := &send.Request{}
	r.Path = d.str("fetch path", manifest.MaxPathLen)
	r.Size = int64(d.bounded("fetch size", 1<<62))
	r.Mtime = d.varint("fetch mtime")
	r.Ctime = d.varint("fetch ctime")
	r.Inode = d.uvarint("fetch inode")
	switch d.byte("fetch mode") {
	case modeWhole:
		r.Mode = send.Whole
	case modeAppend:
		r.Mode = send.Append
		r.BasisSize = int64(d.bounded("fetch basis size", 1<<62))
		r.BasisHash = d.u64("fetch basis hash")
	case modeDelta:
		r.Mode = send.Delta
		if len(sig) == 0 {
			d.fail("delta fetch without a signature")
		}
	default:
		d.fail("fetch mode")
	}
	if err := d.end("fetch"); err != nil {
		return nil, err
	}
	if err := manifest.ValidPath(r.Path); err != nil || r.Path == "" {
		return nil, protoErr("fetch of an invalid path %q", r.Path)
	}
	if r.Mode == send.Delta {
		r.Sig = &delta.Signature{}
		if err := r.Sig.UnmarshalBinary(sig); err != nil {
			return nil, protoErr("signature for %q: %v", r.Path, err)
		}
	}
	return r, nil
}

// EncodeEnd encodes the outcome of a file request.
func EncodeEnd(r *send.Result) []byte {
	b := []byte{statusByte(r.Status)}
	switch r.Status {
	case send.OK:
		b = binary.AppendUvarint(b, uint64(r.Stats.Size))
		b = binary.AppendUvarint(b, uint64(r.Stats.Literal))
		b = binary.AppendUvarint(b, uint64(r.Stats.Matched))
		b = binary.LittleEndian.AppendUint64(b, r.Stats.Hash)
		if r.Fresh == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = appendStat(b, r.Fresh)
		}
	case send.Failed:
		op, errno, msg := "", uint64(0), "unknown error"
		if r.Err != nil {
			msg = r.Err.Error()
			if pe, ok := r.Err.(*os.PathError); ok {
				op = pe.Op
				msg = pe.Err.Error()
				if en, ok := pe.Err.(syscall.Errno); ok {
					errno = uint64(en)
				}
			}
		}
		if len(op) > maxOpName {
			op = op[:maxOpName]
		}
		if len(msg) > maxErrText {
			msg = msg[:maxErrText]
		}
		b = appendStr(b, op)
		b = binary.AppendUvarint(b, errno)
		b = appendStr(b, msg)
	}
	return b
}

// DecodeEnd decodes the outcome of a request for path. A failure that
// carried an errno comes back as *os.PathError with that errno.
func DecodeEnd(p []byte, path string) (*send.Result, error) {
	d := decoder{b: p}
	r := &send.Result{}
	switch d.byte("end status") {
	case statusOK:
		r.Status = send.OK
		r.Stats.Size = int64(d.bounded("end size", 1<<62))
		r.Stats.Literal = int64(d.bounded("end literal", 1<<62))
		r.Stats.Matched = int64(d.bounded("end matched", 1<<62))
		r.Stats.Hash = d.u64("end hash")
		if d.byte("end fresh") == 1 {
			r.Fresh = decodeStat(&d, path)
		}
	case statusChanged:
		r.Status = send.Changed
	case statusPrefixChanged:
		r.Status = send.PrefixChanged
	case statusFailed:
		r.Status = send.Failed
		op := d.str("end op", maxOpName)
		errno := d.uvarint("end errno")
		msg := d.str("end error", maxErrText)
		if errno != 0 && errno < 4096 {
			r.Err = &os.PathError{Op: op, Path: path, Err: syscall.Errno(errno)}
		} else if op != "" {
			r.Err = &os.PathError{Op: op, Path: path, Err: fmt.Errorf("%s", msg)}
		} else {
			r.Err = fmt.Errorf("%s", msg)
		}
	default:
		d.fail("end status")
	}
	if err := d.end("end"); err != nil {
		return nil, err
	}
	return r, nil
}

func appendStat(b []byte, e *manifest.Entry) []byte {
	b = append(b, byte(e.Type))
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendUvarint(b, uint64(e.UID))
	b = binary.AppendUvarint(b, uint64(e.GID))
	b = binary.AppendUvarint(b, uint64(e.Size))
	b = binary.AppendVarint(b, e.Mtime)
	b = binary.AppendVarint(b, e.Ctime)
	b = binary.AppendUvarint(b, e.Dev)
	b = binary.AppendUvarint(b, e.Inode)
	b = binary.AppendUvarint(b, uint64(e.Nlink))
	return b
}

func decodeStat(d *decoder, path string) *manifest.Entry {
	e := &manifest.Entry{Path: path}
	e.Type = manifest.Type(d.byte("stat type"))
	if e.Type != manifest.TypeFile {
		d.fail("stat type")
	}
	e.Mode = uint32(d.bounded("stat mode", 0o7777))
	e.UID = uint32(d.bounded("stat uid", 1<<32-1))
	e.GID = uint32(d.bounded("stat gid", 1<<32-1))
	e.Size = int64(d.bounded("stat size", 1<<62))
	e.Mtime = d.varint("stat mtime")
	e.Ctime = d.varint("stat ctime")
	e.Dev = d.uvarint("stat dev")
	e.Inode = d.uvarint("stat inode")
	e.Nlink = uint32(d.bounded("stat nlink", 1<<32-1))
	return e
}

// Item is one itemized change of a pass run by the peer.
type Item struct{ Code, Path, Note string }

// EncodeItem encodes an item.
func EncodeItem(it Item) []byte {
	b := appendStr(nil, it.Code)
	b = appendStr(b, it.Path)
	return appendStr(b, it.Note)
}

// DecodeItem decodes an item.
func DecodeItem(p []byte) (Item, error) {
	d := decoder{b: p}
	it := Item{Code: d.str("item code", 16), Path: d.str("item path", manifest.MaxPathLen+1), Note: d.str("item note", manifest.MaxPathLen+8)}
	return it, d.end("item")
}

// EncodeUvarints encodes counters (TProgress) or a credit (TCredit).
func EncodeUvarints(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// DecodeUvarints decodes exactly n values.
func DecodeUvarints(p []byte, n int) ([]uint64, error) {
	d := decoder{b: p}
	vs := make([]uint64, n)
	for i := range vs {
		vs[i] = d.bounded("counter", 1<<62)
	}
	return vs, d.end("counters")
}

// EncodeHashErr encodes a file a hashing scan could not read.
func EncodeHashErr(path, msg string) []byte {
	if len(msg) > maxErrText {
		msg = msg[:maxErrText]
	}
	return appendStr(appendStr(nil, path), msg)
}

// DecodeHashErr decodes it.
func DecodeHashErr(p []byte) (string, string, error) {
	d := decoder{b: p}
	path := d.str("hash error path", manifest.MaxPathLen)
	msg := d.str("hash error", maxErrText)
	return path, msg, d.end("hash error")
}

// PassResult ends a push: the pass's result (a Result in JSON), or why it
// could not run.
type PassResult struct {
	Result json.RawMessage `json:"result,omitempty"`
	Err    string          `json:"error,omitempty"`
}
