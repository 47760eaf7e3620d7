package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/xwan-dev/xwan/userspace/metrics"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// MetricsHandler serves the gateway's Prometheus metrics.
func (g *Gateway) MetricsHandler() http.Handler {
	g.metricsOnce.Do(func() {
		g.metricsHandler = promhttp.HandlerFor(g.registry(), promhttp.HandlerOpts{})
	})
	return g.metricsHandler
}

// MetricPaths implements metrics.Source.
func (g *Gateway) MetricPaths() []metrics.Path {
	stats, _ := g.dp.PathStats()
	g.mu.RLock()
	defer g.mu.RUnlock()
	slots := map[uint16]int{}
	for k, t := range g.model.Tables {
		if k.Link == 0 {
			for _, id := range t {
				slots[id]++
			}
		}
	}
	out := make([]metrics.Path, 0, len(g.paths))
	for _, p := range g.paths {
		m := metrics.Path{
			ID: p.id, Site: p.site, Link: p.link.Name, Up: p.up, Usable: slots[p.id] > 0,
			RTT: -1, Jitter: -1, Loss: -1, Weight: p.link.BandwidthUp,
			Share: float64(slots[p.id]) / float64(policy.MaglevSlots),
		}
		if int(p.id) < len(stats) {
			m.Traffic = metrics.Counter{Packets: stats[p.id].Packets, Bytes: stats[p.id].Bytes}
		}
		g.fillProbeMetrics(p, &m)
		out = append(out, m)
	}
	return out
}

// MetricRules implements metrics.Source.
func (g *Gateway) MetricRules() map[string]metrics.Counter {
	out := map[string]metrics.Counter{}
	stats, err := g.dp.RuleStats()
	if err != nil {
		return out
	}
	for i, r := range g.cfg.Rules {
		out[r.Name] = metrics.Counter{Packets: stats[i].Packets, Bytes: stats[i].Bytes}
	}
	d := stats[policy.DefaultRule]
	out["default"] = metrics.Counter{Packets: d.Packets, Bytes: d.Bytes}
	return out
}

// MetricReasons implements metrics.Source.
func (g *Gateway) MetricReasons() map[string]metrics.Counter {
	out := map[string]metrics.Counter{}
	stats, err := g.dp.ReasonStats()
	if err != nil {
		return out
	}
	for i, c := range stats {
		out[verdict.Reason(i).String()] = metrics.Counter{Packets: c.Packets, Bytes: c.Bytes}
	}
	return out
}

// MetricWANGuard implements metrics.Source.
func (g *Gateway) MetricWANGuard() map[string]metrics.Counter {
	out := map[string]metrics.Counter{}
	stats, err := g.dp.WANStats()
	if err != nil {
		return out
	}
	for i, c := range stats {
		if i < len(wanReasonNames) {
			out[wanReasonNames[i]] = metrics.Counter{Packets: c.Packets, Bytes: c.Bytes}
		}
	}
	return out
}

// MetricEvents implements metrics.Source.
func (g *Gateway) MetricEvents() map[string]uint64 {
	out := map[string]uint64{}
	for t, n := range g.bus.Counts() {
		out[string(t)] = n
	}
	return out
}

// MetricFailovers implements metrics.Source.
func (g *Gateway) MetricFailovers() (uint64, uint64) {
	return g.counters.failovers.Load(), g.counters.failbacks.Load()
}
