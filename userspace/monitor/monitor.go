// Package monitor watches hosts on the LAN side (or behind a cloud
// interconnect) with ICMP echo probes and tests reachability on demand.
//
// A Monitor probes each Target at its interval and turns the results into
// up/down state changes with thresholds (consecutive failures, loss over a
// window), reported as Events and Prometheus metrics. TestConnectivity is
// the one-shot test behind `xwanctl test-connectivity`.
//
// Sockets are opened by Start and TestConnectivity in the calling thread's
// network namespace.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for zero Target fields.
const (
	DefaultInterval    = 2 * time.Second
	DefaultWindow      = 10
	DefaultLossPercent = 50
	DefaultDownAfter   = 3
	DefaultUpAfter     = 2
)

// Target is one monitored host.
type Target struct {
	Name    string     `json:"name" yaml:"name"`
	Address netip.Addr `json:"address" yaml:"address"`
	// Source is the address to probe from; zero lets the kernel choose.
	Source netip.Addr `json:"source,omitzero" yaml:"source,omitempty"`
	// Interval between probes; 0 means DefaultInterval, minimum 100 ms.
	Interval time.Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
	// Timeout per probe; 0 means the interval, capped at 1 s.
	Timeout time.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Window is the number of recent probes loss is computed over.
	Window int `json:"window,omitempty" yaml:"window,omitempty"`
	// LossPercent: the host is down when this share of the window is lost.
	LossPercent int `json:"loss_percent,omitempty" yaml:"loss-percent,omitempty"`
	// DownAfter consecutive failures take the host down at once.
	DownAfter int `json:"down_after,omitempty" yaml:"down-after,omitempty"`
	// UpAfter consecutive replies bring it back up.
	UpAfter int `json:"up_after,omitempty" yaml:"up-after,omitempty"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (t Target) validate() error {
	switch {
	case !nameRE.MatchString(t.Name):
		return fmt.Errorf("monitor: target %q: name: use letters, digits, '.', '_' and '-' (at most 64)", t.Name)
	case !t.Address.IsValid():
		return fmt.Errorf("monitor: target %q: address: required", t.Name)
	case t.Address.IsUnspecified() || t.Address.IsMulticast():
		return fmt.Errorf("monitor: target %q: address %s: must be a unicast address", t.Name, t.Address)
	case t.Source.IsValid() && t.Source.Is4() != t.Address.Is4():
		return fmt.Errorf("monitor: target %q: source %s: not the address family of %s", t.Name, t.Source, t.Address)
	case t.Interval != 0 && t.Interval < 100*time.Millisecond:
		return fmt.Errorf("monitor: target %q: interval %s: must be at least 100ms", t.Name, t.Interval)
	case t.Timeout < 0:
		return fmt.Errorf("monitor: target %q: timeout %s: must not be negative", t.Name, t.Timeout)
	case t.Window < 0 || t.Window > 1000:
		return fmt.Errorf("monitor: target %q: window %d: must be between 1 and 1000", t.Name, t.Window)
	case t.LossPercent < 0 || t.LossPercent > 100:
		return fmt.Errorf("monitor: target %q: loss-percent %d: must be between 1 and 100", t.Name, t.LossPercent)
	case t.DownAfter < 0 || t.UpAfter < 0:
		return fmt.Errorf("monitor: target %q: down-after and up-after must not be negative", t.Name)
	}
	return nil
}

func (t Target) withDefaults() Target {
	if t.Interval == 0 {
		t.Interval = DefaultInterval
	}
	if t.Timeout == 0 {
		t.Timeout = min(t.Interval, time.Second)
	}
	if t.Window == 0 {
		t.Window = DefaultWindow
	}
	if t.LossPercent == 0 {
		t.LossPercent = DefaultLossPercent
	}
	if t.DownAfter == 0 {
		t.DownAfter = DefaultDownAfter
	}
	if t.UpAfter == 0 {
		t.UpAfter = DefaultUpAfter
	}
	return t
}

// Event is a state change of a monitored host.
type Event struct {
	Time     time.Time  `json:"time"`
	Target   string     `json:"target"`
	Address  netip.Addr `json:"address"`
	State    State      `json:"state"`
	Previous State      `json:"previous"`
	Reason   string     `json:"reason"`
	// LastResult is the probe that decided the change.
	LastResult Result `json:"last_result"`
}

// KindStateChange is Event.Kind().
const KindStateChange = "lan_monitor_state_change"

func (e Event) When() time.Time { return e.Time }
func (e Event) Kind() string    { return KindStateChange }
func (e Event) Key() string     { return "lan-monitor/" + e.Target }
func (e Event) Summary() string {
	s := fmt.Sprintf("LAN monitor: %s (%s) is %s: %s", e.Target, e.Address, e.State, e.Reason)
	if e.State == StateDown && e.LastResult.Reason != "" {
		s += " (last probe: " + e.LastResult.Reason + ")"
	}
	return s
}

// Status of one target for the control API.
type Status struct {
	Target  string        `json:"target"`
	Address netip.Addr    `json:"address"`
	State   State         `json:"state"`
	Since   time.Time     `json:"since,omitzero"`
	Loss    float64       `json:"loss"` // share of the window lost, 0..1
	LastRTT time.Duration `json:"last_rtt,omitempty"`
	Last    Result        `json:"last"`
}

// Options are the daemon's hooks.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// OnEvent receives state changes; called from the probing goroutines,
	// it must hand off quickly.
	OnEvent func(Event)
}

// prober is one target's probe source; the real one is a pinger.
type prober interface {
	probe(ctx context.Context, timeout time.Duration) Result
	close() error
}

// Monitor probes a fixed set of targets.
type Monitor struct {
	targets []Target
	log     *slog.Logger
	onEvent func(Event)
	met     *monitorMetrics
	dial    func(Target) (prober, error) // newPinger, or a fake in tests

	mu     sync.Mutex
	status map[string]*Status
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates the targets; nothing runs until Start.
func New(targets []Target, opts Options) (*Monitor, error) {
	m := &Monitor{log: opts.Logger, onEvent: opts.OnEvent, status: map[string]*Status{}}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With("component", "lan-monitor")
	if m.onEvent == nil {
		m.onEvent = func(Event) {}
	}
	var errs []error
	seen := map[string]bool{}
	for _, t := range targets {
		if err := t.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("monitor: target %q: name used twice", t.Name))
			continue
		}
		seen[t.Name] = true
		t = t.withDefaults()
		m.targets = append(m.targets, t)
		m.status[t.Name] = &Status{Target: t.Name, Address: t.Address, State: StateUnknown}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.dial = func(t Target) (prober, error) { return newPinger(t.Address, t.Source) }
	m.met = newMonitorMetrics(m.targets)
	if opts.Registerer != nil {
		if err := m.met.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("monitor: metrics: %w", err)
		}
	}
	return m, nil
}

// Start opens one socket per target (in the calling thread's network
// namespace) and starts probing until Close or the end of ctx. It fails if
// any socket cannot be opened, e.g. a source address that is not on this
// host.
func (m *Monitor) Start(ctx context.Context) error {
	probers := make([]prober, len(m.targets))
	for i, t := range m.targets {
		p, err := m.dial(t)
		if err != nil {
			for _, q := range probers[:i] {
				_ = q.close()
			}
			return fmt.Errorf("monitor: target %q: %w", t.Name, err)
		}
		probers[i] = p
	}
	ctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	for i, t := range m.targets {
		m.wg.Add(1)
		go m.run(ctx, t, probers[i])
	}
	return nil
}

// Close stops probing and closes the sockets.
func (m *Monitor) Close() error {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	return nil
}

func (m *Monitor) run(ctx context.Context, t Target, p prober) {
	defer m.wg.Done()
	defer p.close()
	k := newTracker(t)
	tick := time.NewTicker(t.Interval)
	defer tick.Stop()
	for {
		res := p.probe(ctx, t.Timeout)
		if ctx.Err() != nil {
			return
		}
		m.record(t, k, res)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *Monitor) record(t Target, k *tracker, res Result) {
	m.met.probe(t.Name, res)
	prev, state, reason := k.observe(res.Outcome == Success)
	changed := prev != state
	m.mu.Lock()
	st := m.status[t.Name]
	st.State, st.Loss, st.Last = state, k.loss(), res
	if res.Outcome == Success {
		st.LastRTT = res.RTT
	}
	if changed {
		st.Since = res.Time
	}
	m.mu.Unlock()
	m.met.state(t.Name, t.Address, state, k.loss())
	if !changed {
		return
	}
	m.met.changed(t.Name, state)
	ev := Event{Time: res.Time, Target: t.Name, Address: t.Address, State: state, Previous: prev, Reason: reason, LastResult: res}
	m.log.Info(ev.Summary())
	m.onEvent(ev)
}

// Status reports every target in configuration order.
func (m *Monitor) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.targets))
	for _, t := range m.targets {
		out = append(out, *m.status[t.Name])
	}
	return out
}
