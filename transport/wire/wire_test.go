package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/msync/msync/delta"
	"github.com/msync/msync/manifest"
	"github.com/msync/msync/sync/send"
)

func TestHandshakeNegotiates(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		_, _, err := Handshake(b, b, Hello{Version: 3, MinVersion: 1, Features: FeatZstd | 1<<7})
		errc <- err
	}()
	v, f, err := Handshake(a, a, Hello{Version: 1, MinVersion: 1, Features: FeatZstd})
	if err != nil || <-errc != nil {
		t.Fatal(err)
	}
	if v != 1 || f != FeatZstd {
		t.Fatalf("negotiated v%d features %#x, want v1 %#x", v, f, FeatZstd)
	}
}

func TestNegotiateRefusesDisjointVersions(t *testing.T) {
	_, _, err := Negotiate(Hello{Version: 1, MinVersion: 1}, Hello{Version: 5, MinVersion: 4})
	if err == nil || !strings.Contains(err.Error(), "this msync speaks 1..1, the peer 4..5") {
		t.Fatalf("err = %v", err)
	}
}

// A far side that is not msync (a shell error, an old banner) is named.
func TestHandshakeWithAStranger(t *testing.T) {
	r := strings.NewReader("bash: line 1: msync: command not found\n")
	_, _, err := Handshake(r, io.Discard, Hello{Version: 1, MinVersion: 1})
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "command not found") || !strings.Contains(err.Error(), "--remote-msync") {
		t.Fatalf("err = %v", err)
	}
	_, _, err = Handshake(strings.NewReader(""), io.Discard, Hello{Version: 1, MinVersion: 1})
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("empty peer: err = %v", err)
	}
}

func TestFrameLimits(t *testing.T) {
	var b []byte
	b = AppendHeader(b, TData, 7, 3)
	b = append(b, "abc"...)
	b = AppendHeader(b, TData, 7, MaxPayload+1) // announced, never allocated
	r := NewReader(bytes.NewReader(b))
	f, err := r.Next()
	if err != nil || f.Type != TData || f.Stream != 7 || string(f.Payload) != "abc" {
		t.Fatalf("first frame: %+v %v", f, err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized frame: %v", err)
	}
	r = NewReader(bytes.NewReader([]byte{99, 0, 0, 0, 0, 0, 0, 0, 0}))
	if _, err := r.Next(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("unknown type: %v", err)
	}
	r = NewReader(bytes.NewReader(AppendHeader(nil, TLog, 0, 10)))
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated payload: %v", err)
	}
}

func TestFetchRoundTrip(t *testing.T) {
	sig, _, err := delta.Sign(t.Context(), strings.NewReader(strings.Repeat("x", 5000)), 5000, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := sig.MarshalBinary()
	for _, req := range []*send.Request{
		{Path: "a/b", Size: 10, Mtime: -5, Ctime: 7, Inode: 9},
		{Path: "mbox", Size: 100, Mode: send.Append, BasisSize: 50, BasisHash: 42},
		{Path: "big", Size: 6000, Mode: send.Delta, Sig: sig},
	} {
		var s []byte
		if req.Mode == send.Delta {
			s = sb
		}
		got, err := DecodeFetch(EncodeFetch(req), s)
		if err != nil {
			t.Fatal(err)
		}
		if got.Path != req.Path || got.Size != req.Size || got.Mtime != req.Mtime || got.Mode != req.Mode || got.BasisHash != req.BasisHash {
			t.Fatalf("round trip: %+v vs %+v", got, req)
		}
	}
	for _, bad := range []string{"../etc/passwd", "/etc/passwd", "a//b", ""} {
		if _, err := DecodeFetch(EncodeFetch(&send.Request{Path: bad}), nil); !errors.Is(err, ErrProtocol) {
			t.Errorf("fetch of %q accepted: %v", bad, err)
		}
	}
	if _, err := DecodeFetch(EncodeFetch(&send.Request{Path: "x", Mode: send.Delta}), nil); err == nil {
		t.Error("delta without signature accepted")
	}
}

func TestEndRoundTrip(t *testing.T) {
	fresh := &manifest.Entry{Path: "f", Type: manifest.TypeFile, Mode: 0o640, Size: 12, Mtime: 5, Inode: 3, Nlink: 1}
	got, err := DecodeEnd(EncodeEnd(&send.Result{Status: send.OK, Fresh: fresh, Stats: delta.Stats{Size: 12, Literal: 2, Matched: 10, Hash: 99}}), "f")
	if err != nil || got.Stats.Hash != 99 || got.Fresh == nil || got.Fresh.Mode != 0o640 || got.Fresh.Size != 12 {
		t.Fatalf("ok end: %+v %v", got, err)
	}
	got, err = DecodeEnd(EncodeEnd(&send.Result{Status: send.Failed, Err: &os.PathError{Op: "open", Path: "f", Err: syscall.ENOENT}}), "f")
	var pe *os.PathError
	if err != nil || !errors.As(got.Err, &pe) || pe.Op != "open" || !errors.Is(pe.Err, syscall.ENOENT) {
		t.Fatalf("failed end: %+v %v", got, err)
	}
}

// FuzzFrames feeds arbitrary bytes to the frame reader and every payload
// decoder: they must return errors, never panic or allocate unbounded.
func FuzzFrames(f *testing.F) {
	f.Add(append(AppendHeader(nil, TFetch, 1, 0), EncodeFetch(&send.Request{Path: "a", Mode: send.Append, BasisSize: 3})...))
	f.Add(append(AppendHeader(nil, TEnd, 1, 0), EncodeEnd(&send.Result{Status: send.Failed, Err: errors.New("x")})...))
	f.Add(append(AppendHeader(nil, TItem, 0, 0), EncodeItem(Item{">f+++++++++", "a", ""})...))
	f.Add(AppendHello(nil, Hello{Version: 1, MinVersion: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseHello(data)
		r := NewReader(bytes.NewReader(data))
		for range 64 {
			fr, err := r.Next()
			if err != nil {
				return
			}
			if len(fr.Payload) > MaxPayload {
				t.Fatalf("payload of %d bytes passed the limit", len(fr.Payload))
			}
			DecodeFetch(fr.Payload, fr.Payload)
			DecodeEnd(fr.Payload, "p")
			DecodeItem(fr.Payload)
			DecodeUvarints(fr.Payload, 6)
			DecodeHashErr(fr.Payload)
			var o OpenRequest
			DecodeJSON(fr.Payload, &o)
		}
	})
}
