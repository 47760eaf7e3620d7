package pathsel

import (
	"fmt"
	"time"
)

// Event is what the selector reports: one of the types below. Site and
// path ids are the gateway's (config.SiteID, path ids).
type Event interface {
	When() time.Time
}

// LinkQualityAlert: a metric of a path was bad (above its threshold) in
// FailBad of the last FailOf evaluations, or (Metric "lost_in_a_row")
// the path's probes stopped coming back.
type LinkQualityAlert struct {
	Time      time.Time
	Site      uint16
	Path      uint16
	Metric    string  // "loss", "jitter", "latency", "lost_in_a_row"
	Value     float64 // in Unit
	Threshold float64 // the fail threshold, in Unit
	Unit      string  // "%", "ms", "probes"
}

// LinkQualityClear: an alerted metric was good (at or under the recover
// threshold) in RecoverGood evaluations in a row, or the probes came
// back ("lost_in_a_row").
type LinkQualityClear struct {
	Time      time.Time
	Site      uint16
	Path      uint16
	Metric    string
	Value     float64
	Threshold float64 // the recover threshold, in Unit
	Unit      string
}

// PathFailover: the paths that take a site's new flows changed because one
// or more of them became unacceptable, went down or were removed. To may
// be empty: no path to the site (rules fall back to their secondary
// transport).
type PathFailover struct {
	Time   time.Time
	Site   uint16
	From   []uint16
	To     []uint16
	Reason string
}

// PathFailback: paths that had been unacceptable take new flows again
// (after HoldDown), or a better precedence came back.
type PathFailback struct {
	Time   time.Time
	Site   uint16
	From   []uint16
	To     []uint16
	Reason string
}

// PathStateChange: a path's health state changed. The gateway mirrors
// Down / not Down into the kernel's paths map (state first, so flows on a
// dead path re-pick at once).
type PathStateChange struct {
	Time   time.Time
	Site   uint16
	Path   uint16
	From   State
	To     State
	Reason string
}

func (e LinkQualityAlert) When() time.Time { return e.Time }
func (e LinkQualityClear) When() time.Time { return e.Time }
func (e PathFailover) When() time.Time     { return e.Time }
func (e PathFailback) When() time.Time     { return e.Time }
func (e PathStateChange) When() time.Time  { return e.Time }

func (e LinkQualityAlert) String() string {
	return fmt.Sprintf("path %d: %s %.4g%s above %.4g%s", e.Path, e.Metric, e.Value, e.Unit, e.Threshold, e.Unit)
}

func (e LinkQualityClear) String() string {
	return fmt.Sprintf("path %d: %s %.4g%s back under %.4g%s", e.Path, e.Metric, e.Value, e.Unit, e.Threshold, e.Unit)
}
