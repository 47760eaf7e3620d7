package bgp

import (
	"context"
	"errors"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics: the per-neighbour gauges are read from gobgp at scrape time (a
// collector), so they never go stale; the counters count events.
type metrics struct {
	s *Server

	peerState  *prometheus.Desc
	peerUp     *prometheus.Desc
	received   *prometheus.Desc
	accepted   *prometheus.Desc
	advertised *prometheus.Desc
	installed  *prometheus.Desc

	prefixLimit *prometheus.CounterVec
	sessions    *prometheus.CounterVec
	sinkErrors  prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	nl := []string{"neighbor"}
	m := &metrics{
		s: s,
		peerState: prometheus.NewDesc("xwan_bgp_peer_state",
			"BGP FSM state of the neighbor: 1 idle, 2 connect, 3 active, 4 opensent, 5 openconfirm, 6 established.",
			[]string{"neighbor", "peer"}, nil),
		peerUp: prometheus.NewDesc("xwan_bgp_peer_up",
			"1 if the BGP session with the neighbor is established, else 0.", nl, nil),
		received: prometheus.NewDesc("xwan_bgp_routes_received",
			"Prefixes received from the neighbor, before import policy.", nl, nil),
		accepted: prometheus.NewDesc("xwan_bgp_routes_accepted",
			"Prefixes from the neighbor accepted by the import policy.", nl, nil),
		advertised: prometheus.NewDesc("xwan_bgp_routes_advertised",
			"Prefixes advertised to the neighbor.", nl, nil),
		installed: prometheus.NewDesc("xwan_bgp_routes_installed",
			"Best routes learned from the neighbor and handed to the kernel and other route sinks.", nl, nil),
		prefixLimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xwan_bgp_prefix_limit_exceeded_total",
			Help: "Sessions torn down because the neighbor sent more prefixes than its limit.",
		}, nl),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xwan_bgp_session_transitions_total",
			Help: "BGP sessions established (to=up) and lost (to=down).",
		}, []string{"neighbor", "to"}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xwan_bgp_route_sink_errors_total",
			Help: "Failed route installations or removals (kernel or other sinks).",
		}),
	}
	for _, n := range s.order {
		// Zero-initialise so the series exist before the first event.
		m.prefixLimit.WithLabelValues(n.cfg.Name)
		m.sessions.WithLabelValues(n.cfg.Name, "up")
		m.sessions.WithLabelValues(n.cfg.Name, "down")
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m, m.prefixLimit, m.sessions, m.sinkErrors} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}

func (m *metrics) event(e Event) {
	switch e := e.(type) {
	case SessionUp:
		m.sessions.WithLabelValues(e.Neighbor, "up").Inc()
	case SessionDown:
		m.sessions.WithLabelValues(e.Neighbor, "down").Inc()
	case PrefixLimitExceeded:
		m.prefixLimit.WithLabelValues(e.Neighbor).Inc()
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.peerState, m.peerUp, m.received, m.accepted, m.advertised, m.installed} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sts, err := m.s.Status(ctx)
	if err != nil {
		return // not running: no per-neighbour series
	}
	g := prometheus.GaugeValue
	for _, st := range sts {
		state := float64(api.PeerState_SessionState_value[strings.ToUpper(st.State)])
		ch <- prometheus.MustNewConstMetric(m.peerState, g, state, st.Name, st.Peer.String())
		up := 0.0
		if st.State == "established" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.peerUp, g, up, st.Name)
		ch <- prometheus.MustNewConstMetric(m.received, g, float64(st.PrefixesReceived), st.Name)
		ch <- prometheus.MustNewConstMetric(m.accepted, g, float64(st.PrefixesAccepted), st.Name)
		ch <- prometheus.MustNewConstMetric(m.advertised, g, float64(st.PrefixesAdvertised), st.Name)
		ch <- prometheus.MustNewConstMetric(m.installed, g, float64(st.RoutesActive), st.Name)
	}
}
