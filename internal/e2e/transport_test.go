package e2e

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport"
	"github.com/msync/msync/transport/remote"
)

// A transport as the conformance suite sees it: how to name a local
// directory through it, and the flags that reach it.
type transportCase struct {
	name   string
	remote func(t *testing.T, dir string) string
	flags  func(t *testing.T) []string
}

func transports() []transportCase {
	return []transportCase{
		{"local", func(t *testing.T, dir string) string { return dir }, func(*testing.T) []string { return nil }},
		{"ssh", func(t *testing.T, dir string) string { needSSHD(t); return "127.0.0.1:" + dir }, needSSHD},
		{"tcp", func(t *testing.T, dir string) string { return daemonURL(t, "tmp", dir) }, func(*testing.T) []string { return nil }},
	}
}

type passJSON struct {
	Result struct {
		Stats struct {
			Files, Created, Updated, Deleted, Appended, Deltas, Failed int64
			Literal                                                    int64 `json:"literal_bytes"`
			Wire                                                       int64 `json:"wire_bytes"`
		} `json:"stats"`
		Committed bool `json:"committed"`
	} `json:"result"`
	ExitCode int `json:"exit_code"`
}

func runJSON(t *testing.T, args ...string) passJSON {
	t.Helper()
	code, out, errOut := msync(append(args, "--json")...)
	var r passJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("msync %s: exit %d, no JSON: %v\n%s\n%s", strings.Join(args, " "), code, err, out, errOut)
	}
	if code != 0 {
		t.Fatalf("msync %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return r
}

// Every transport, pulling and pushing, passes the core correctness checks:
// after initial, and after mutate + catch-up, rsync -aHX --delete -c -n -i
// finds nothing and msync verify (through the transport) agrees; the
// catch-up sends the mbox by the append path and big.bin as a delta.
func TestTransportConformance(t *testing.T) {
	needTool(t, "rsync")
	for _, tc := range transports() {
		for _, dir := range []string{"pull", "push"} {
			t.Run(tc.name+"/"+dir, func(t *testing.T) {
				base := t.TempDir()
				src, dst, st := base+"/src", base+"/dst", base+"/state"
				must(t, os.Mkdir(src, 0o755))
				buildTreeACL(t, src)
				from, to := tc.remote(t, src), dst
				if dir == "push" {
					from, to = src, tc.remote(t, dst)
				}
				flags := append([]string{"--state", st}, tc.flags(t)...)
				r := runJSON(t, append([]string{"initial", from, to}, flags...)...)
				if !r.Result.Committed || r.Result.Stats.Files == 0 {
					t.Fatalf("initial: %+v", r)
				}
				mustRsyncClean(t, src, dst)
				if code, out, e := msync(append([]string{"verify", from, to}, tc.flags(t)...)...); code != 0 {
					t.Fatalf("verify through %s: exit %d\n%s%s", tc.name, code, out, e)
				}

				write(t, dst+"/extraneous", "mine", 0o644)
				mutateTree(t, src)
				mutateACLs(t, src)
				r = runJSON(t, append([]string{"catchup", from, to}, flags...)...)
				if d := strings.TrimSpace(rsyncDiff(t, src, dst)); d != "*deleting   extraneous" {
					t.Fatalf("after catch-up rsync finds more than the extraneous file:\n%s", d)
				}
				if _, err := os.Stat(dst + "/extraneous"); err != nil {
					t.Fatal("catch-up deleted a file msync did not put there")
				}
				if tc.name != "local" {
					s := r.Result.Stats
					if s.Appended != 1 || s.Deltas < 1 {
						t.Errorf("remote catch-up: want the mbox appended and big.bin as a delta: %+v", s)
					}
					if s.Literal > 64<<10 {
						t.Errorf("remote catch-up sent %d literal bytes for small edits", s.Literal)
					}
					if s.Wire == 0 {
						t.Errorf("remote catch-up counted no wire bytes")
					}
				}
				r = runJSON(t, append([]string{"catchup", from, to, "--delete-extraneous"}, flags...)...)
				if r.Result.Stats.Deleted != 1 {
					t.Errorf("--delete-extraneous deleted %d, want 1", r.Result.Stats.Deleted)
				}
				mustRsyncClean(t, src, dst)
				mustVerify(t, src, dst)

				// verify through the transport names a flipped byte.
				flipByteKeepTimes(t, dst+"/page")
				code, out, _ := msync(append([]string{"verify", from, to}, tc.flags(t)...)...)
				if code != 1 || !strings.Contains(out, "* page (content)") {
					t.Fatalf("verify through %s of a corrupted copy: exit %d\n%s", tc.name, code, out)
				}
			})
		}
	}
}

// The same checks through the Transport interface itself, for every
// implementation: LocalTransport, and Conn over ssh and over TCP.
func TestTransportContract(t *testing.T) {
	needTool(t, "rsync")
	type impl struct {
		name string
		open func(t *testing.T) transport.Transport
		path func(t *testing.T, dir string) string
	}
	dial := func(t *testing.T, raw string) transport.Transport {
		e, err := transport.Parse(raw)
		must(t, err)
		o := transport.DialOptions{}
		if e.Kind == transport.SSH {
			f := needSSHD(t)
			o.Rsh, o.RemoteMsync = f[1], f[3]
		}
		tr, err := transport.Open(context.Background(), e, o)
		must(t, err)
		return tr
	}
	for _, im := range []impl{
		{"local", func(t *testing.T) transport.Transport { return &transport.LocalTransport{} }, func(t *testing.T, d string) string { return d }},
		{"ssh", func(t *testing.T) transport.Transport { return dial(t, "127.0.0.1:/") }, func(t *testing.T, d string) string { return d }},
		{"tcp", func(t *testing.T) transport.Transport { return dial(t, daemonURL(t, "tmp", os.TempDir()+"/x")) }, func(t *testing.T, d string) string {
			u := daemonURL(t, "tmp", d)
			return u[strings.Index(u, "/tmp/")+1:]
		}},
	} {
		t.Run(im.name, func(t *testing.T) {
			base := t.TempDir()
			src, pulled, pushed := base+"/src", base+"/pulled", base+"/pushed"
			must(t, os.Mkdir(src, 0o755))
			buildTree(t, src)
			for round, kind := range []engine.Kind{engine.Initial, engine.Catchup} {
				if round == 1 {
					mutateTree(t, src)
				}
				tr := im.open(t)
				s, err := tr.Source(context.Background(), im.path(t, src))
				must(t, err)
				_, err = engine.Run(context.Background(), engine.Options{Kind: kind, Src: s.String(), Dst: pulled, Source: s,
					StateDir: base + "/pull.state", Xattrs: true, Owners: isRoot()})
				must(t, err)
				tr.Close()
				mustRsyncClean(t, src, pulled)

				tr = im.open(t)
				local := tree.NewLocal(src)
				sd := base + "/push.state"
				if im.name == "tcp" {
					sd = "" // the daemon chooses, beneath its own state root
				}
				res, err := tr.Push(context.Background(), local, im.path(t, pushed), remote.PushOptions{Kind: kind, SrcName: "test:" + src,
					StateDir: sd, Xattrs: true, OwnersAuto: true}, remote.PushHandlers{})
				must(t, err)
				local.Close()
				tr.Close()
				if res.Stats.Failed != 0 {
					t.Fatalf("push: %+v", res.Problems)
				}
				mustRsyncClean(t, src, pushed)
			}
		})
	}
}
