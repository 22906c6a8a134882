package fsx

import (
	"bytes"
	"os"
	"strconv"
	"sync"
)

// Umask returns the process's file mode creation mask, read from
// /proc/self/status (Linux 4.7 and later) without changing it, as
// umask(2) would; ok is false when the kernel does not say.
func Umask() (mask uint32, ok bool) {
	umaskOnce.Do(func() { umaskVal, umaskOK = readUmask("/proc/self/status") })
	return umaskVal, umaskOK
}

var (
	umaskOnce sync.Once
	umaskVal  uint32
	umaskOK   bool
)

func readUmask(path string) (uint32, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(b) {
		v, found := bytes.CutPrefix(line, []byte("Umask:"))
		if !found {
			continue
		}
		m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
		if err != nil || m > 0o777 {
			return 0, false
		}
		return uint32(m), true
	}
	return 0, false
}
