package remote

import (
	"testing"

	"github.com/msync/msync/sync/send"
)

// The connection's reader hands a reply's data to the reply's channel and
// waits while it is full (fetchReply.deliver). That is safe only because
// each request comes from the worker that reads its reply at once and
// waits for nothing else meanwhile. A Source fetching ahead of its
// workers (send.AheadFetcher) would let a large reply nobody reads yet stop
// the reader while the workers wait for later replies behind it: it must
// first stop deliver from waiting on a reply nobody reads (as the rsync
// client spills it).
func TestSourceDoesNotFetchAhead(t *testing.T) {
	if af, ok := any(&Source{}).(send.AheadFetcher); ok && af.FetchesAhead() {
		t.Fatal("the remote source fetches ahead, but its connection's reader waits for each reply's reader")
	}
}
