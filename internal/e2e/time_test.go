package e2e

import "time"

type timeT = time.Time

func unixTime(sec, nsec int64) time.Time { return time.Unix(sec, nsec) }
