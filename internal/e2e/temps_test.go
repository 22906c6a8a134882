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

// A name of a temp's shape is a user's name to every pass and to verify: a
// source file .msync.0123456789abcdef.tmp is copied (pulled and pushed
// through every transport), and an extra DST file of that shape is found by
// verify as rsync finds it. Verify hides no name: with the pair's state it
// names an extra carrying the state's tag as a killed pass's leftover, and
// still does not say IDENTICAL; without the state it is an ordinary name.
func TestTempShapedNamesVerified(t *testing.T) {
	needTool(t, "rsync")
	const shaped = ".msync.0123456789abcdef.tmp"
	for _, tc := range transports() {
		for _, dir := range []string{"pull", "push"} {
			t.Run(tc.name+"/"+dir, func(t *testing.T) {
				base := t.TempDir()
				src, dst, st := base+"/src", base+"/dst", base+"/state"
				write(t, src+"/"+shaped, "user data", 0o644)
				write(t, src+"/d/"+shaped, "more user data", 0o644)
				from, to := tc.remote(t, src), dst
				if dir == "push" {
					from, to = src, tc.remote(t, dst)
				}
				flags := append([]string{"--state", st}, tc.flags(t)...)
				runJSON(t, append([]string{"initial", from, to}, flags...)...)
				mustRsyncClean(t, src, dst)
				mustVerify(t, src, dst)

				extras := []string{"d/.msync.fedcba9876543210.tmp"}
				ownTemp := ""
				if dir == "pull" {
					tag, err := os.ReadFile(st + "/temp-tag")
					must(t, err)
					ownTemp = "d/.msync." + strings.TrimSpace(string(tag)) + ".0123456789abcdef.tmp"
					extras = append(extras, ownTemp)
				}
				for _, e := range extras {
					write(t, dst+"/"+e, "extra", 0o600)
				}
				diff := rsyncDiff(t, src, dst)
				for _, e := range extras {
					if !strings.Contains(diff, "*deleting   "+e+"\n") {
						t.Fatalf("rsync does not list the extra %s:\n%s", e, diff)
					}
				}
				for _, withState := range []bool{true, false} {
					args := append([]string{"verify", from, to}, tc.flags(t)...)
					if withState {
						args = append(args, "--state", st)
					}
					code, out, errOut := msync(args...)
					if code != 1 || strings.Contains(out, "IDENTICAL") {
						t.Fatalf("msync %s: exit %d, want 1 (DIFFERENT)\n%s%s", strings.Join(args, " "), code, out, errOut)
					}
					for _, e := range extras {
						want := "+ " + e + "\n"
						if e == ownTemp && withState {
							want = "+ " + e + ": msync temp left by a killed pass\n"
						}
						if !strings.Contains(out, want) {
							t.Errorf("msync %s does not print %q:\n%s", strings.Join(args, " "), want, out)
						}
					}
				}
			})
		}
	}
}
