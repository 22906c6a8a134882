package state

import "testing"

// The temp tag is made once and kept.
func TestTempTag(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, err := d.TempTag()
	if err != nil || len(a) != tempTagLen {
		t.Fatalf("TempTag = %q, %v", a, err)
	}
	if b, err := d.TempTag(); err != nil || b != a {
		t.Fatalf("second TempTag = %q, %v; want %q", b, err, a)
	}
}
