package monitor

import (
	"errors"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

type monitorMetrics struct {
	up      *prometheus.GaugeVec
	rtt     *prometheus.GaugeVec
	loss    *prometheus.GaugeVec
	probes  *prometheus.CounterVec
	changes *prometheus.CounterVec
}

func newMonitorMetrics(targets []Target) *monitorMetrics {
	m := &monitorMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xwan_lan_monitor_up",
			Help: "1 if the monitored host is up, 0 if down or not yet known.",
		}, []string{"target", "address"}),
		rtt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xwan_lan_monitor_rtt_seconds",
			Help: "Round-trip time of the last answered ICMP probe.",
		}, []string{"target"}),
		loss: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xwan_lan_monitor_loss_ratio",
			Help: "Share of probes lost over the target's window (0..1).",
		}, []string{"target"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xwan_lan_monitor_probes_total",
			Help: "ICMP probes by outcome: success, failed (no reply), error (not sent).",
		}, []string{"target", "outcome"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xwan_lan_monitor_state_changes_total",
			Help: "State changes of monitored hosts, by new state.",
		}, []string{"target", "state"}),
	}
	for _, t := range targets {
		m.up.WithLabelValues(t.Name, t.Address.String())
		for _, o := range []Outcome{Success, Failed, Error} {
			m.probes.WithLabelValues(t.Name, string(o))
		}
	}
	return m
}

func (m *monitorMetrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.up, m.rtt, m.loss, m.probes, m.changes} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}

func (m *monitorMetrics) probe(target string, r Result) {
	m.probes.WithLabelValues(target, string(r.Outcome)).Inc()
	if r.Outcome == Success {
		m.rtt.WithLabelValues(target).Set(r.RTT.Seconds())
	}
}

func (m *monitorMetrics) state(target string, addr netip.Addr, s State, loss float64) {
	up := 0.0
	if s == StateUp {
		up = 1
	}
	m.up.WithLabelValues(target, addr.String()).Set(up)
	m.loss.WithLabelValues(target).Set(loss)
}

func (m *monitorMetrics) changed(target string, s State) {
	m.changes.WithLabelValues(target, string(s)).Inc()
}
