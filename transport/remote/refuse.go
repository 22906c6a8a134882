package remote

import (
	"io"
	"time"

	"github.com/msync/msync/internal/netx"
	"github.com/msync/msync/transport/wire"
)

// Refuse turns a client away with msg, which it reports as the daemon's
// error: the greetings, then an error frame, then the end. rw should have
// a deadline.
func Refuse(rw io.ReadWriteCloser, msg string) error {
	ours := wire.Hello{Version: wire.Version, MinVersion: wire.MinVersion, Features: wire.KnownFeatures}
	if _, _, err := wire.Handshake(rw, rw, ours); err != nil {
		return err
	}
	if _, err := rw.Write(append(wire.AppendHeader(nil, wire.TError, 0, len(msg)), msg...)); err != nil {
		return err
	}
	// Let the client read it before the end: stop writing, and read what
	// it sends meanwhile rather than reset the connection.
	netx.CloseWrite(rw)
	netx.SetReadDeadline(rw, time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(rw, 1<<20))
	return nil
}
