package transport

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/msync/msync/internal/netx"
	"github.com/msync/msync/transport/remote"
)

// Limits bound what the clients of `msync serve --listen` may hold. Zero
// fields take netx's defaults; negative durations mean none.
type Limits struct {
	MaxConns  int           // connections served at once; beyond, refused
	Handshake time.Duration // from connecting to the request read
	Idle      time.Duration // with nothing read or written
}

func (l Limits) config(log io.Writer) netx.Config {
	return netx.Config{Name: "msync serve", Log: log, MaxConns: l.MaxConns, Handshake: l.Handshake, Idle: l.Idle,
		Refuse: func(nc net.Conn, max int) {
			remote.Refuse(nc, fmt.Sprintf("max connections (%d) reached -- try again later", max))
		}}
}
