package gateway

import (
	"time"

	"golang.org/x/sys/unix"
)

// nanos is a CLOCK_MONOTONIC reading, the clock of bpf_ktime_get_coarse_ns.
type nanos time.Duration

func monotonicNow() nanos {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return nanos(ts.Nano())
}

// Sub returns the time from t to n.
func (n nanos) Sub(t time.Duration) time.Duration { return time.Duration(n) - t }
