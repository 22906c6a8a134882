package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/msync/msync/delta"
	"github.com/msync/msync/sync/send"
)

// The bytes of modes and statuses are msync's protocol, fixed here: they
// do not follow the values of send.Mode and send.Status.
func TestModeAndStatusBytes(t *testing.T) {
	for _, tc := range []struct {
		m    send.Mode
		want byte
	}{{send.Whole, 0}, {send.Append, 1}, {send.Delta, 2}, {send.Mode(9), 0xff}} {
		r := &send.Request{Path: "f", Mode: tc.m}
		b := EncodeFetch(r)
		// path (len+1), size, mtime, ctime, inode: one byte each here.
		if got := b[6]; got != tc.want {
			t.Errorf("mode %d encodes as %d, want %d", tc.m, got, tc.want)
		}
		sig := []byte(nil)
		if tc.m == send.Delta {
			s, _, err := delta.Sign(t.Context(), strings.NewReader("some old content"), 16, 0)
			if err != nil {
				t.Fatal(err)
			}
			sig, _ = s.MarshalBinary()
		}
		back, err := DecodeFetch(b, sig)
		if tc.want == 0xff {
			if err == nil {
				t.Errorf("mode byte %d accepted", tc.want)
			}
			continue
		}
		if err != nil || back.Mode != tc.m {
			t.Errorf("mode %d: decoded %v, %v", tc.m, back, err)
		}
	}
	for _, tc := range []struct {
		s    send.Status
		want []byte
	}{
		{send.Changed, []byte{1}},
		{send.PrefixChanged, []byte{2}},
		{send.Status(9), []byte{0xff}},
	} {
		b := EncodeEnd(&send.Result{Status: tc.s})
		if !bytes.Equal(b, tc.want) {
			t.Errorf("status %d encodes as %v, want %v", tc.s, b, tc.want)
		}
		back, err := DecodeEnd(b, "f")
		if tc.want[0] == 0xff {
			if err == nil {
				t.Errorf("status byte %d accepted", tc.want[0])
			}
			continue
		}
		if err != nil || back.Status != tc.s {
			t.Errorf("status %d: decoded %v, %v", tc.s, back, err)
		}
	}
	ok := EncodeEnd(&send.Result{Status: send.OK, Stats: delta.Stats{Size: 1, Literal: 1, Hash: 7}})
	if ok[0] != 0 {
		t.Errorf("OK encodes as %d", ok[0])
	}
	failed := EncodeEnd(&send.Result{Status: send.Failed})
	if failed[0] != 3 {
		t.Errorf("Failed encodes as %d", failed[0])
	}
	for _, b := range [][]byte{ok, failed} {
		if r, err := DecodeEnd(b, "f"); err != nil || r.Status != send.Status(b[0]) {
			t.Errorf("%v: decoded %v, %v", b, r, err)
		}
	}
}
