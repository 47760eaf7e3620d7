package monitor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestTracker(t *testing.T) {
	base := Target{Name: "h", Address: netip.MustParseAddr("198.18.1.2"), Window: 4, LossPercent: 60, DownAfter: 3, UpAfter: 2}
	tests := []struct {
		name string
		in   string // s = success, f = failure
		want string // state after each result: u, d, ? (unknown)
	}{
		{"first replies bring it up", "ss", "?u"},
		{"consecutive failures take it down", "ssfff", "?uuud"},
		{"single losses are tolerated", "ssfsfs", "?uuuuu"},
		// Window 4, 60 %: s s | f s f f -> the window f s f f has 75 %
		// loss, down before three failures in a row.
		{"loss over the window", "ssfsff", "?uuuud"},
		{"recovery needs UpAfter replies", "fffsfss", "??ddddu"},
		{"coming up clears the window", "fffssfs", "??dduuu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newTracker(base)
			var got strings.Builder
			for _, c := range tc.in {
				_, s, _ := k.observe(c == 's')
				got.WriteByte(map[State]byte{StateUnknown: '?', StateUp: 'u', StateDown: 'd'}[s])
			}
			if got.String() != tc.want {
				t.Errorf("%s: states %s, want %s", tc.in, got.String(), tc.want)
			}
		})
	}
	k := newTracker(base)
	k.observe(true)
	k.observe(true)
	k.observe(false)
	k.observe(false)
	if prev, now, reason := k.observe(false); prev != StateUp || now != StateDown || reason != "3 consecutive probes failed" {
		t.Errorf("down transition: %s -> %s (%q)", prev, now, reason)
	}
}

func TestTargetValidation(t *testing.T) {
	a := netip.MustParseAddr("198.18.1.2")
	tests := []struct {
		t    Target
		want string
	}{
		{Target{Name: "", Address: a}, `monitor: target "": name: use letters, digits, '.', '_' and '-' (at most 64)`},
		{Target{Name: "h"}, `monitor: target "h": address: required`},
		{Target{Name: "h", Address: netip.MustParseAddr("0.0.0.0")}, `monitor: target "h": address 0.0.0.0: must be a unicast address`},
		{Target{Name: "h", Address: a, Source: netip.MustParseAddr("2001:db8::1")}, `monitor: target "h": source 2001:db8::1: not the address family of 198.18.1.2`},
		{Target{Name: "h", Address: a, Interval: 10 * time.Millisecond}, `monitor: target "h": interval 10ms: must be at least 100ms`},
		{Target{Name: "h", Address: a, LossPercent: 101}, `monitor: target "h": loss-percent 101: must be between 1 and 100`},
		{Target{Name: "h", Address: a, Window: -1}, `monitor: target "h": window -1: must be between 1 and 1000`},
	}
	for _, tc := range tests {
		_, err := New([]Target{tc.t}, Options{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("New(%+v) = %v, want %q", tc.t, err, tc.want)
		}
	}
	_, err := New([]Target{{Name: "h", Address: a}, {Name: "h", Address: a}}, Options{})
	if err == nil || err.Error() != `monitor: target "h": name used twice` {
		t.Errorf("duplicate name: %v", err)
	}
	tg := Target{Name: "h", Address: a}.withDefaults()
	if tg.Interval != DefaultInterval || tg.Timeout != time.Second || tg.Window != DefaultWindow || tg.DownAfter != DefaultDownAfter {
		t.Errorf("defaults: %+v", tg)
	}
}

// script is a fake prober playing a fixed sequence of outcomes, then
// repeating the last one.
type script struct {
	mu    sync.Mutex
	steps []Outcome
	n     int
}

func (s *script) probe(ctx context.Context, _ time.Duration) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.steps[min(s.n, len(s.steps)-1)]
	s.n++
	r := Result{Outcome: o, To: netip.MustParseAddr("198.18.1.2"), Time: time.Now()}
	switch o {
	case Success:
		r.RTT = 3 * time.Millisecond
	case Failed:
		r.Reason = "no reply within 1s"
	}
	return r
}

func (s *script) close() error { return nil }

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func TestMonitorEventsAndMetrics(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	reg := prometheus.NewRegistry()
	m, err := New([]Target{{Name: "vm1", Address: netip.MustParseAddr("198.18.1.2"), Interval: 100 * time.Millisecond, DownAfter: 2, UpAfter: 2}},
		Options{Logger: quiet(), Registerer: reg, OnEvent: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	sc := &script{steps: []Outcome{Success, Success, Failed, Error, Success, Success}}
	m.dial = func(Target) (prober, error) { return sc, nil }
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sc.count() < 8 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	m.Close()
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, e := range events {
		got = append(got, fmt.Sprintf("%s->%s: %s", e.Previous, e.State, e.Reason))
	}
	want := []string{
		"unknown->up: 2 consecutive replies",
		"up->down: 2 consecutive probes failed",
		"down->up: 2 consecutive replies",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if e := events[1]; e.Kind() != KindStateChange || e.Key() != "lan-monitor/vm1" || !strings.Contains(e.Summary(), "vm1 (198.18.1.2) is down") {
		t.Errorf("event metadata: %s %s %q", e.Kind(), e.Key(), e.Summary())
	}
	if st := m.Status()[0]; st.State != StateUp || st.LastRTT != 3*time.Millisecond {
		t.Errorf("status = %+v", st)
	}
	for _, c := range []struct {
		name string
		v    float64
	}{
		{"error", 1}, {"failed", 1},
	} {
		if got := testutil.ToFloat64(m.met.probes.WithLabelValues("vm1", c.name)); got != c.v {
			t.Errorf("probes{%s} = %v, want %v", c.name, got, c.v)
		}
	}
	if got := testutil.ToFloat64(m.met.changes.WithLabelValues("vm1", "down")); got != 1 {
		t.Errorf("state changes to down = %v", got)
	}
	if got := testutil.ToFloat64(m.met.up.WithLabelValues("vm1", "198.18.1.2")); got != 1 {
		t.Errorf("up gauge = %v", got)
	}
	if n := testutil.CollectAndCount(reg, "xwan_lan_monitor_rtt_seconds"); n != 1 {
		t.Errorf("rtt series = %d", n)
	}
}
