package cli

import (
	"fmt"
	"sync"
	"time"

	"github.com/msync/msync/sync/engine"
	"github.com/schollz/progressbar/v3"
)

// startProgress shows a byte progress bar with files, rate and ETA on stderr
// while a pass runs. The total grows while the scan is still finding work.
func startProgress(env Env, force, off bool, c *engine.Counters) (stop func()) {
	if off || (!force && !env.IsTerminal) {
		return func() {}
	}
	bar := progressbar.NewOptions64(1,
		progressbar.OptionSetWriter(env.Stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			bar.ChangeMax64(max(c.BytesQueued.Load(), 1))
			state := "scanning"
			if c.ScanFinished.Load() {
				state = "copying"
			}
			bar.Describe(fmt.Sprintf("%s: %d scanned, files %d/%d", state, c.Scanned.Load(), c.FilesDone.Load(), c.FilesQueued.Load()))
			bar.Set64(c.BytesDone.Load())
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		bar.Finish()
		fmt.Fprintln(env.Stderr)
	}
}
