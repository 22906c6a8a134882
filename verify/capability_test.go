package verify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/msync/msync/sync/tree"
)

// fakeSide is a Side that says what its file system stores.
type fakeSide struct {
	acls bool
	err  error
}

func (s fakeSide) String() string { return "side" }
func (s fakeSide) Scan(context.Context, tree.ScanConfig) (tree.Scan, error) {
	return nil, errors.New("not scanned")
}
func (s fakeSide) ACLSupport() (bool, error) { return s.acls, s.err }

// plain is a Side that cannot tell.
type plain struct{ fakeSide }

func (plain) ACLSupport() {}

// The ACL note comes from any Side that can tell (aclProber), not from a
// type switch on the local tree.
func TestACLNoteFromCapability(t *testing.T) {
	o := Options{Xattrs: true, Owners: true}
	has := func(out []string, who string) bool {
		return slices.ContainsFunc(out, func(s string) bool { return strings.HasPrefix(s, "ACLs at "+who+":") })
	}
	out := notCompared(o, fakeSide{acls: false}, fakeSide{acls: true})
	if !has(out, "SRC") || has(out, "DST") {
		t.Errorf("no ACLs at SRC: notes %q", out)
	}
	out = notCompared(o, fakeSide{err: errors.New("unknown")}, fakeSide{acls: false})
	if has(out, "SRC") || !has(out, "DST") {
		t.Errorf("unknown at SRC, none at DST: notes %q", out)
	}
	var _ Side = plain{}
	if _, ok := Side(plain{}).(aclProber); ok {
		t.Fatal("plain must not be an aclProber")
	}
	if out := notCompared(o, plain{}, plain{}); has(out, "SRC") || has(out, "DST") {
		t.Errorf("sides that cannot tell: notes %q", out)
	}
	if _, ok := Side(tree.NewLocal(t.TempDir())).(aclProber); !ok {
		t.Error("tree.Local does not tell its ACL support")
	}
}
