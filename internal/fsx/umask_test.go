package fsx

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadUmask(t *testing.T) {
	old := unix.Umask(0o027)
	defer unix.Umask(old)
	if m, ok := readUmask("/proc/self/status"); !ok || m != 0o027 {
		t.Fatalf("readUmask = %#o, %v; want 0o27, true", m, ok)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		text string
		want uint32
		ok   bool
	}{
		{"Name:\tx\nUmask:\t0002\nState:\tR\n", 0o002, true},
		{"Name:\tx\nState:\tR\n", 0, false}, // kernels before 4.7
		{"Umask:\t9\n", 0, false},           // not octal
		{"Umask:\t017777\n", 0, false},      // more than permission bits
	} {
		p := filepath.Join(dir, "status")
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if m, ok := readUmask(p); m != tc.want || ok != tc.ok {
			t.Errorf("%q: %#o, %v; want %#o, %v", tc.text, m, ok, tc.want, tc.ok)
		}
	}
	if _, ok := readUmask(filepath.Join(dir, "missing")); ok {
		t.Error("a missing file gave a umask")
	}
}
