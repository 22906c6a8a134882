package remote

import (
	"context"
	"testing"

	"github.com/msync/msync/sync/tree/sourcetest"
)

// TestRemoteSourceConforms runs the source suite on msync's remote source,
// served over an in-memory connection: the scan and every fetch cross the
// wire protocol.
func TestRemoteSourceConforms(t *testing.T) {
	sourcetest.Run(t, sourcetest.Caps{}, func(t *testing.T, dir string) (sourcetest.Source, func()) {
		c, errc := pipe(t, anyPath)
		s, err := c.OpenSource(context.Background(), dir, "")
		if err != nil {
			t.Fatal(err)
		}
		return s, func() {
			c.Close()
			if err := <-errc; err != nil {
				t.Errorf("server: %v", err)
			}
		}
	})
}
