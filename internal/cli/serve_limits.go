package cli

import (
	"time"

	"github.com/msync/msync/internal/netx"
	"github.com/msync/msync/transport"
	"github.com/msync/msync/transport/rsync"
	"github.com/spf13/pflag"
)

// serveLimits are the daemons' flags bounding what clients may hold.
type serveLimits struct {
	maxConns     int
	timeout      time.Duration
	maxFileListM int64
}

func (l *serveLimits) flags(fl *pflag.FlagSet) {
	fl.IntVar(&l.maxConns, "max-connections", netx.DefaultMaxConns, "serve at most this many clients at once; turn the next ones away with an error")
	fl.DurationVar(&l.timeout, "timeout", netx.DefaultIdle, "drop a client the daemon waits on when nothing moved for this long (0: never)")
	fl.Int64Var(&l.maxFileListM, "max-file-list-mib", rsync.DefaultFileListBytes>>20, "with --rsync: refuse a pushed file list that needs more memory than this, in MiB")
}

// idle converts --timeout: 0 means never.
func (l *serveLimits) idle() time.Duration {
	if l.timeout <= 0 {
		return -1
	}
	return l.timeout
}

func (l *serveLimits) msync() transport.Limits {
	return transport.Limits{MaxConns: l.maxConns, Idle: l.idle()}
}

func (l *serveLimits) rsync() rsync.Limits {
	return rsync.Limits{MaxConns: l.maxConns, Idle: l.idle(), FileList: l.maxFileListM << 20}
}
