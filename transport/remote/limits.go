package remote

import (
	"fmt"
	"runtime"

	"github.com/msync/msync/transport/wire"
)

// maxQueuedSig bounds the signature bytes of the file requests a served
// tree holds (queued or being answered): a peer's requests wait for the
// senders, their signatures in memory meanwhile.
var maxQueuedSig int64 = 256 << 20 // a variable for tests

// queueSig counts the signature of a request about to be queued.
func (s *servedSource) queueSig(n int) error {
	if n == 0 {
		return nil
	}
	if s.queuedSig.Add(int64(n)) > maxQueuedSig {
		s.queuedSig.Add(-int64(n))
		return fmt.Errorf("%w: the file requests waiting hold more than %d MiB of signatures", wire.ErrProtocol, maxQueuedSig>>20)
	}
	return nil
}

// scanWorkers is the number of hashing goroutines a peer's scan request
// gets: what it asks for, within what this host can use.
func scanWorkers(asked int) int {
	return min(max(asked, 0), maxScanWorkers())
}

func maxScanWorkers() int { return min(64, max(16, 4*runtime.NumCPU())) }

// markBusy marks the connection as working for its client, for a
// daemon's idle timeout, until the returned function is called.
func (c *Conn) markBusy() (done func()) {
	if c.busy == nil {
		return func() {}
	}
	return c.busy()
}
