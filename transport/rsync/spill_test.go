package rsync

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A spill takes a whole stream without a reader, returns it in order, and
// pipes the rest once its reader has caught up.
func TestSpillNeverWaitsForItsReader(t *testing.T) {
	sp, err := newSpill(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	half := len(data) / 2
	wrote := make(chan error, 1)
	go func() {
		for p := data[:half]; len(p) > 0; p = p[min(len(p), 32<<10):] {
			if _, err := sp.Write(p[:min(len(p), 32<<10)]); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer waited for a reader that has not come")
	}
	if sp.piped {
		t.Fatal("piped before the reader came")
	}
	got := make(chan []byte)
	go func() {
		b, err := io.ReadAll(sp)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	// Once the reader waits, the rest goes through the pipe.
	for {
		sp.mu.Lock()
		w := sp.waiting
		sp.mu.Unlock()
		if w {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := sp.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	if !sp.piped {
		t.Error("the stream was not piped once its reader caught up")
	}
	sp.CloseWrite(nil)
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("read %d bytes, not the %d written", len(b), len(data))
	}
	sp.CloseRead(io.ErrClosedPipe)
	if sp.ends != 0 {
		t.Errorf("%d ends still open", sp.ends)
	}
}

// A reader that gives up makes the next write fail; a writer's error
// reaches the reader after the data before it.
func TestSpillEnds(t *testing.T) {
	sp, err := newSpill(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sp.CloseRead(io.ErrClosedPipe)
	if _, err := sp.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write after the reader left: %v", err)
	}
	sp.CloseWrite(nil)

	sp, err = newSpill(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	sp.Write([]byte("abc"))
	sp.CloseWrite(boom)
	b, err := io.ReadAll(sp)
	if string(b) != "abc" || !errors.Is(err, boom) {
		t.Errorf("read %q, %v; want abc, boom", b, err)
	}
	sp.CloseRead(io.ErrClosedPipe)
}

// A spill's temp file goes where the client was told (a pass's state
// directory), not to $TMPDIR, which may be RAM.
func TestSpillGoesToItsDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	if sp, err := newSpill(missing); err == nil || !strings.Contains(err.Error(), missing) {
		if sp != nil {
			sp.CloseRead(nil)
			sp.CloseWrite(nil)
		}
		t.Fatalf("a spill into a missing directory: %v, want an error naming %s", err, missing)
	}
	dir := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		t.Setenv("TMPDIR", "/dev/shm") // another file system than dir's, mostly
	}
	c := &Client{spill: dir}
	r := newReply(0, "f")
	r.spillDir = c.spill
	st, err := r.newStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.CloseRead(nil)
	defer st.CloseWrite(nil)
	sp, ok := st.(*spill)
	if !ok {
		t.Fatalf("an answer nobody reads yet streams through %T, want a spill", st)
	}
	var a, b unix.Statfs_t
	if err := unix.Fstatfs(int(sp.f.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(dir, &b); err != nil {
		t.Fatal(err)
	}
	if a.Fsid != b.Fsid {
		t.Errorf("the spill is on file system %v, want %s's (%v)", a.Fsid, dir, b.Fsid)
	}
}
