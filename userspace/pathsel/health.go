package pathsel

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/xwan-dev/xwan/userspace/probe"
)

// State is a path's health.
type State uint8

const (
	// Down: no session, or DownAfter probes in a row unanswered. Flows on
	// it move at once.
	Down State = iota
	// Degraded: alive but unacceptable: a quality alert is active, or the
	// path came back from Down and has not yet had RecoverGood clean
	// evaluations. No new flows (unless nothing better is alive);
	// existing ones move gradually.
	Degraded
	// Up: acceptable.
	Up
)

func (s State) String() string {
	switch s {
	case Down:
		return "down"
	case Degraded:
		return "degraded"
	case Up:
		return "up"
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// Metric indexes a Verdict's arrays.
type Metric int

// Metrics.
const (
	MetricLoss    Metric = iota // loss, %
	MetricJitter                // jitter, ms
	MetricLatency               // mean RTT, ms
	nMetrics
)

func (m Metric) String() string {
	if m >= 0 && m < nMetrics {
		return metricNames[m]
	}
	return fmt.Sprintf("metric-%d", int(m))
}

var metricNames = [nMetrics]string{"loss", "jitter", "latency"}
var metricUnits = [nMetrics]string{"%", "ms", "ms"}

// MetricLostInARow names the alert raised when probes stop coming back.
const MetricLostInARow = "lost_in_a_row"

type metricState struct {
	hist    uint32 // last FailOf verdicts, bit 0 the newest, 1 = bad
	streak  int    // good evaluations in a row while alerted
	alerted bool
}

// health is one path's state machine. It does not know about sites or
// selection; the Selector feeds it and reads its state.
type health struct {
	connected bool
	probeDown bool
	misses    int // reported with probeDown

	state  State
	since  time.Time
	reason string

	everUp     bool // has been Up once: a return from Down must then recover
	recovering bool // came back from Down: RecoverGood clean evaluations needed
	recStreak  int
	downAlert  bool // LinkQualityAlert lost_in_a_row raised
	m          [nMetrics]metricState

	penalized bool      // left Up for health: new flows again after HoldDown of Up
	rejoin    bool      // penalized at some time since it last took flows: its return is a failback
	upSince   time.Time // when it last became Up

	last Verdict // the last evaluation
}

// Verdict is the outcome of one evaluation of a path.
type Verdict struct {
	Time    time.Time
	Stats   probe.Stats
	Skipped bool              // too few samples: no verdict
	Bad     [nMetrics]bool    // above the fail threshold
	Good    [nMetrics]bool    // at or under the recover threshold
	Value   [nMetrics]float64 // in the metric's unit
}

func (h *health) alive() bool { return h.connected && !h.probeDown }

// eligible: may take new flows.
func (h *health) eligible(now time.Time, hold time.Duration) bool {
	return h.state == Up && (!h.penalized || now.Sub(h.upSince) >= hold)
}

// holdEnds is when a penalized Up path becomes eligible.
func (h *health) holdEnds(hold time.Duration) time.Time { return h.upSince.Add(hold) }

func (h *health) anyAlert() bool {
	for i := range h.m {
		if h.m[i].alerted {
			return true
		}
	}
	return false
}

// settle recomputes the state from the flags and returns a change event
// (nil if none).
func (h *health) settle(now time.Time, site, path uint16, why string) *PathStateChange {
	var s State
	switch {
	case !h.alive():
		s = Down
	case !h.everUp:
		// First time alive: innocent until measured.
		s = Up
	case h.recovering || h.anyAlert():
		s = Degraded
	default:
		s = Up
	}
	if s == h.state {
		return nil
	}
	ev := &PathStateChange{Time: now, Site: site, Path: path, From: h.state, To: s, Reason: why}
	if h.state == Up {
		h.penalized, h.rejoin = true, true
	}
	if s == Up {
		h.upSince = now
		h.everUp = true
	}
	h.state, h.since, h.reason = s, now, why
	return ev
}

// setAlive handles a session or probe signal; the caller settles.
func (h *health) setAlive(connected, probeDown bool) {
	wasAlive := h.alive()
	h.connected, h.probeDown = connected, probeDown
	if !h.alive() {
		h.recStreak = 0
		return
	}
	if !wasAlive && h.everUp {
		h.recovering, h.recStreak = true, 0
	}
}

// thresholds in the metrics' units; a negative threshold is off.
func (t Thresholds) limits() (fail [nMetrics]float64, on [nMetrics]bool) {
	fail[MetricLoss], on[MetricLoss] = t.Loss*100, t.Loss >= 0
	fail[MetricJitter], on[MetricJitter] = ms(t.Jitter), t.Jitter >= 0
	fail[MetricLatency], on[MetricLatency] = ms(t.Latency), t.Latency >= 0
	return
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// judge turns stats into a verdict.
func judge(s probe.Stats, t Thresholds, minSamples int, now time.Time) Verdict {
	v := Verdict{Time: now, Stats: s}
	if s.Sent < minSamples {
		v.Skipped = true
		return v
	}
	v.Value[MetricLoss] = s.Loss * 100
	v.Value[MetricJitter] = ms(s.Jitter)
	v.Value[MetricLatency] = ms(s.RTTMean)
	fail, on := t.limits()
	for i := range v.Bad {
		if !on[i] {
			v.Good[i] = true
			continue
		}
		v.Bad[i] = v.Value[i] > fail[i]
		v.Good[i] = v.Value[i] <= fail[i]*t.Recover
	}
	if s.Lost < t.MinLost {
		v.Bad[MetricLoss] = false
	}
	if s.Samples == 0 {
		// Every probe lost: no RTT to judge; loss speaks for the path.
		v.Bad[MetricJitter], v.Bad[MetricLatency] = false, false
		v.Good[MetricJitter], v.Good[MetricLatency] = false, false
	}
	return v
}

// evaluate applies one verdict: N-of-M alerts, recover streaks. It returns
// the alert and clear events; the caller settles the state.
func (h *health) evaluate(v Verdict, c *Config, t Thresholds, site, path uint16) []Event {
	h.last = v
	if v.Skipped || !h.alive() {
		return nil
	}
	var out []Event
	fail, on := t.limits()
	window := uint32(1)<<c.FailOf - 1
	allGood := true
	for i := range h.m {
		m := &h.m[i]
		if !on[i] {
			continue
		}
		allGood = allGood && v.Good[i]
		m.hist <<= 1
		if v.Bad[i] {
			m.hist |= 1
		}
		m.hist &= window
		switch {
		case !m.alerted && bits.OnesCount32(m.hist) >= c.FailBad:
			m.alerted, m.streak = true, 0
			out = append(out, LinkQualityAlert{Time: v.Time, Site: site, Path: path, Metric: metricNames[i], Value: v.Value[i], Threshold: fail[i], Unit: metricUnits[i]})
		case m.alerted && v.Good[i]:
			m.streak++
			if m.streak >= c.RecoverGood {
				m.alerted, m.streak, m.hist = false, 0, 0
				out = append(out, LinkQualityClear{Time: v.Time, Site: site, Path: path, Metric: metricNames[i], Value: v.Value[i], Threshold: fail[i] * t.Recover, Unit: metricUnits[i]})
			}
		case m.alerted:
			m.streak = 0
		}
	}
	if h.recovering {
		if allGood {
			h.recStreak++
		} else {
			h.recStreak = 0
		}
		if h.recStreak >= c.RecoverGood {
			h.recovering, h.recStreak = false, 0
		}
	}
	return out
}

// reasonOf says why a path is not acceptable.
func (h *health) reasonOf(t Thresholds, recoverGood int) string {
	switch {
	case !h.connected:
		return "no session"
	case h.probeDown:
		return fmt.Sprintf("%d probes lost in a row", h.misses)
	}
	fail, _ := t.limits()
	for i := range h.m {
		if h.m[i].alerted {
			return fmt.Sprintf("%s %.4g%s above %.4g%s", metricNames[i], h.last.Value[i], metricUnits[i], fail[i], metricUnits[i])
		}
	}
	if h.recovering {
		return fmt.Sprintf("back from down, %d of %d clean evaluations", h.recStreak, recoverGood)
	}
	return ""
}
