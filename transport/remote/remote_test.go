package remote

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msync/msync/sync/engine"
	"github.com/msync/msync/sync/tree"
	"github.com/msync/msync/transport/wire"
	"github.com/msync/msync/verify"
)

// pipe connects a client Conn to Serve over an in-memory connection.
func pipe(t *testing.T, resolve func(*wire.OpenRequest) (string, error)) (*Conn, chan error) {
	t.Helper()
	a, b := net.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- Serve(context.Background(), b, ServerConfig{Resolve: resolve}) }()
	c, err := NewConn(a, Options{Name: "peer:"})
	if err != nil {
		t.Fatal(err)
	}
	return c, errc
}

func anyPath(req *wire.OpenRequest) (string, error) { return req.Path, nil }

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustIdentical(t *testing.T, src, dst string) {
	t.Helper()
	rep, err := verify.Run(context.Background(), verify.Options{Src: src, Dst: dst})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Identical {
		var b bytes.Buffer
		verify.WriteText(&b, rep)
		t.Fatalf("trees differ:\n%s", b.String())
	}
}

func TestPullAndPush(t *testing.T) {
	src, dst, dst2 := t.TempDir(), t.TempDir(), t.TempDir()
	pullState, pushState := filepath.Join(t.TempDir(), "st"), filepath.Join(t.TempDir(), "pst")
	big := strings.Repeat("mailing list archive line\n", 40000)
	writeTree(t, src, map[string]string{"a.txt": "hello", "d/e/f": "deep", "list.mbox": big, "empty": ""})
	for pass, kind := range []engine.Kind{engine.Initial, engine.Catchup} {
		if pass == 1 {
			writeTree(t, src, map[string]string{"list.mbox": big + "From new message\n", "new": "x"})
			os.Remove(filepath.Join(src, "a.txt"))
		}
		c, errc := pipe(t, anyPath)
		s, err := c.OpenSource(context.Background(), src, "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := engine.Run(context.Background(), engine.Options{Kind: kind, Src: "peer:" + src, Dst: dst, Source: s, StateDir: pullState, Xattrs: true})
		if err != nil {
			t.Fatalf("pull %s: %v", kind, err)
		}
		c.Close()
		if err := <-errc; err != nil {
			t.Fatalf("server: %v", err)
		}
		mustIdentical(t, src, dst)
		if pass == 1 && res.Stats.Appended != 1 {
			t.Errorf("pull catch-up: %d appends, want 1 (stats %+v)", res.Stats.Appended, res.Stats)
		}

		c, errc = pipe(t, anyPath)
		local := tree.NewLocal(src)
		res, err = c.Push(context.Background(), local, dst2, "", wire.PassOptions{Kind: string(kind), SrcName: "here:" + src, StateDir: pushState, Xattrs: true}, PushHandlers{})
		if err != nil {
			t.Fatalf("push %s: %v", kind, err)
		}
		c.Close()
		<-errc
		mustIdentical(t, src, dst2)
		if res.Stats.Files == 0 {
			t.Errorf("push result has no files: %+v", res.Stats)
		}
	}
}
