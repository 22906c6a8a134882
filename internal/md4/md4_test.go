package md4

import (
	"encoding/hex"
	"testing"
)

// RFC 1320's test vectors: the wrapper must be MD4 itself.
func TestRFC1320(t *testing.T) {
	for in, want := range map[string]string{
		"":               "31d6cfe0d16ae931b73c59d7e0c089c0",
		"abc":            "a448017aaf21d8525fc10ae87aa6729d",
		"message digest": "d9130a8164549fe818874806e1c7014b",
	} {
		h := New()
		h.Write([]byte(in))
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("md4(%q) = %s, want %s", in, got, want)
		}
	}
	if Size != 16 {
		t.Errorf("Size = %d, want 16", Size)
	}
}
