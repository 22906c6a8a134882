package send

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/msync/msync/internal/fsx"
	"github.com/msync/msync/sync/scan"
	"golang.org/x/sys/unix"
)

// A fetch request (as a msync daemon serves it for its client) naming a
// fifo is refused without the fifo being opened: the open of a device
// node alone has effects. Refused with scan.ErrNotRegular, which only the
// check before any open gives; the fifo's open would block no one here
// (O_NONBLOCK), so the seam-level count is in scan's
// TestOpenFileNeverOpensNonRegular.
func TestFetchOfFifoRefusedUnopened(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := fsx.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	dirs := root.NewDirs()
	defer dirs.Close()
	for _, req := range []*Request{{Path: "fifo"}, {Path: "fifo", HasOwner: true}} {
		var out bytes.Buffer
		res := File(context.Background(), dirs, req, &out)
		if res.Status != Failed || !errors.Is(res.Err, scan.ErrNotRegular) {
			t.Errorf("fetch of a fifo (owner %v): status %v, %v; want Failed, %v", req.HasOwner, res.Status, res.Err, scan.ErrNotRegular)
		}
	}
}
