package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// lookalikes puts names at src that look like msync's temp names but are
// a user's: a Maildir-like directory and a file.
func lookalikes(t *testing.T, src string) {
	t.Helper()
	write(t, src+"/home/.msync.mail.tmp/cur/1.M1:2,S", "a message", 0o600)
	write(t, src+"/.msync.x.tmp", "user data", 0o644)
	write(t, src+"/plain", "plain", 0o644)
}

// checkAdminLookalike checks that the admin's .msync.admin.tmp directory at
// DST survived the pass.
func checkAdminLookalike(t *testing.T, dst string) {
	t.Helper()
	if b, err := os.ReadFile(dst + "/.msync.admin.tmp/notes"); err != nil || string(b) != "the admin's" {
		t.Fatalf("the admin's .msync.admin.tmp at DST was not kept without --delete-extraneous: %v", err)
	}
}

// A name that merely looks like msync's temp name is a user's: copied from
// the source, kept at the destination without --delete-extraneous, through
// every transport and both directions. Only names with the migration's
// temp tag are msync's leftovers, removed by the next pass.
func TestTempLookalikesAreUserNames(t *testing.T) {
	needTool(t, "rsync")
	for _, tc := range transports() {
		for _, dir := range []string{"pull", "push"} {
			t.Run(tc.name+"/"+dir, func(t *testing.T) {
				base := t.TempDir()
				src, dst, st := base+"/src", base+"/dst", base+"/state"
				lookalikes(t, src)
				from, to := tc.remote(t, src), dst
				if dir == "push" {
					from, to = src, tc.remote(t, dst)
				}
				flags := append([]string{"--state", st}, tc.flags(t)...)
				runJSON(t, append([]string{"initial", from, to}, flags...)...)
				mustRsyncClean(t, src, dst)
				mustVerify(t, src, dst)

				write(t, dst+"/.msync.admin.tmp/notes", "the admin's", 0o644)
				write(t, src+"/plain", "plain, changed", 0o644)
				runJSON(t, append([]string{"catchup", from, to}, flags...)...)
				checkAdminLookalike(t, dst)
				if d := strings.TrimSpace(rsyncDiff(t, src, dst)); !strings.Contains(d, "*deleting   .msync.admin.tmp/") || strings.Contains(d, ">f") {
					t.Fatalf("after the catch-up rsync finds more than the admin's directory:\n%s", d)
				}
				if tc.name == "local" {
					// A leftover of this migration's own (a killed pass's
					// temp, carrying the state's tag) is removed.
					tag, err := os.ReadFile(st + "/temp-tag")
					must(t, err)
					own := dst + "/home/.msync." + strings.TrimSpace(string(tag)) + ".0123456789abcdef.tmp"
					write(t, own, "half written", 0o600)
					// Also in a directory the source does not have and
					// the pass keeps.
					kept := dst + "/.msync.admin.tmp/.msync." + strings.TrimSpace(string(tag)) + ".0123456789abcdef.tmp"
					write(t, kept, "half written", 0o600)
					runJSON(t, append([]string{"catchup", from, to}, flags...)...)
					for _, p := range []string{own, kept} {
						if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
							t.Errorf("the leftover temp %s was not removed: %v", p, err)
						}
					}
					checkAdminLookalike(t, dst)
				}
			})
		}
	}
}

// The same through msync's rsync daemon, which a stock rsync client pushes
// to: the look-alikes are copied, and without --delete the admin's stays.
func TestTempLookalikesStockPush(t *testing.T) {
	rs := needTool(t, "rsync")
	base := t.TempDir()
	src, dst := base+"/src", base+"/dst"
	lookalikes(t, src)
	must(t, os.MkdirAll(dst, 0o755))
	url := fmt.Sprintf("rsync://127.0.0.1:%d/data/dst/", startRsyncServe(t, base))
	push := func() {
		t.Helper()
		if out, err := exec.Command(rs, "-aH", src+"/", url).CombinedOutput(); err != nil {
			t.Fatalf("rsync -aH %s %s: %v\n%s", src, url, err, out)
		}
	}
	push()
	mustRsyncClean(t, src, dst)
	write(t, dst+"/.msync.admin.tmp/notes", "the admin's", 0o644)
	write(t, src+"/plain", "plain, changed", 0o644)
	push()
	checkAdminLookalike(t, dst)
	if d := strings.TrimSpace(rsyncDiff(t, src, dst)); d != "*deleting   .msync.admin.tmp/notes\n*deleting   .msync.admin.tmp/" {
		t.Fatalf("after the second push rsync finds:\n%s", d)
	}
}
