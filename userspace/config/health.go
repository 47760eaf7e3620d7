package config

import (
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Health is the health: section: when a path is unacceptable and how
// traffic moves. Zero fields take the defaults of userspace/pathsel and
// userspace/probe (3 % loss, 30 ms jitter, 600 ms latency, evaluated every
// 10 s, 10 s hold-down, down after 3 probes in a row, 20 % of the flows
// moved per second).
type Health struct {
	LossPercent   float64       // fail above this round-trip probe loss
	Jitter        time.Duration // fail above this jitter
	Latency       time.Duration // fail above this mean round-trip time
	EvaluateEvery time.Duration
	HoldDown      time.Duration // acceptable this long before taking flows back
	DownAfter     int           // probes unanswered in a row: down at once
	MovePerSecond float64       // share of misplaced flows moved per second, percent
}

func (d *decoder) health(n *yaml.Node, h *Health) {
	f := d.fields(n, "health", "loss_percent", "jitter", "latency", "evaluate_every", "hold_down", "down_after", "move_per_second_percent")
	if n := f["loss_percent"]; n != nil {
		h.LossPercent = d.percent(n, "health.loss_percent")
	}
	durations := []struct {
		key  string
		dst  *time.Duration
		want string
		ok   func(time.Duration) bool
	}{
		{"jitter", &h.Jitter, "between 1ms and 10s", func(v time.Duration) bool { return v >= time.Millisecond && v <= 10*time.Second }},
		{"latency", &h.Latency, "between 1ms and 60s", func(v time.Duration) bool { return v >= time.Millisecond && v <= time.Minute }},
		{"evaluate_every", &h.EvaluateEvery, "between 1s and 10m", func(v time.Duration) bool { return v >= time.Second && v <= 10*time.Minute }},
		{"hold_down", &h.HoldDown, "between 0s and 1h", func(v time.Duration) bool { return v >= 0 && v <= time.Hour }},
	}
	for _, x := range durations {
		if n := f[x.key]; n != nil {
			*x.dst = d.duration(n, "health."+x.key, x.want, x.ok)
		}
	}
	if n := f["down_after"]; n != nil {
		v, _ := d.integer(n, "health.down_after", 1, 100, "a number of probes 1-100")
		h.DownAfter = int(v)
	}
	if n := f["move_per_second_percent"]; n != nil {
		h.MovePerSecond = d.percent(n, "health.move_per_second_percent")
	}
}

// percent reads a number in (0, 100], written 3, 2.5 or "2.5%".
func (d *decoder) percent(n *yaml.Node, field string) float64 {
	s, ok := d.scalar(n, field, "a percentage such as 3 or 2.5%")
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v <= 0 || v > 100 {
		d.fail(n, field, "must be a percentage above 0 and at most 100, got %q", s)
		return 0
	}
	return v
}
