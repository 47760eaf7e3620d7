package monitor

import "fmt"

// State of a monitored host.
type State string

const (
	StateUnknown State = "unknown" // not enough probes yet
	StateUp      State = "up"
	StateDown    State = "down"
)

// tracker turns probe results into up/down decisions for one target. It
// is pure (no clock, no I/O) so the thresholds are unit-testable.
//
//   - down: DownAfter consecutive failures, or, once the window is full,
//     loss over the last Window probes at or above LossPercent;
//   - up: UpAfter consecutive successes. Coming up clears the window, so
//     the failures of the outage do not take the host straight down again.
type tracker struct {
	t     Target // defaults applied
	ring  []bool // results, true = success
	next  int
	n     int
	fails int // consecutive
	oks   int // consecutive
	state State
}

func newTracker(t Target) *tracker {
	return &tracker{t: t, ring: make([]bool, t.Window), state: StateUnknown}
}

// loss is the share of failed probes in the window, 0..1.
func (k *tracker) loss() float64 {
	if k.n == 0 {
		return 0
	}
	lost := 0
	for i := 0; i < k.n; i++ {
		if !k.ring[i] {
			lost++
		}
	}
	return float64(lost) / float64(k.n)
}

// observe records one result and returns the state before and after it,
// and why it changed (empty if it did not).
func (k *tracker) observe(ok bool) (prev, now State, reason string) {
	k.ring[k.next] = ok
	k.next = (k.next + 1) % len(k.ring)
	if k.n < len(k.ring) {
		k.n++
	}
	if ok {
		k.oks++
		k.fails = 0
	} else {
		k.fails++
		k.oks = 0
	}

	prev = k.state
	switch {
	case k.state != StateDown && k.fails >= k.t.DownAfter:
		k.state = StateDown
		reason = fmt.Sprintf("%d consecutive probes failed", k.fails)
	case k.state != StateDown && k.n == len(k.ring) && k.loss()*100 >= float64(k.t.LossPercent):
		k.state = StateDown
		reason = fmt.Sprintf("%.0f%% loss over the last %d probes (threshold %d%%)", k.loss()*100, k.n, k.t.LossPercent)
	case k.state != StateUp && k.oks >= k.t.UpAfter:
		k.state = StateUp
		reason = fmt.Sprintf("%d consecutive replies", k.oks)
		clear(k.ring)
		k.next, k.n = 0, 0
	}
	return prev, k.state, reason
}
