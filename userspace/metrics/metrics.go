// Package metrics exposes xwand's state to Prometheus. The collector reads
// everything at scrape time from a Source (the gateway): kernel counters
// come from the per-CPU maps, so nothing is counted twice and a scrape
// costs a few batched map reads.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Counter is packets and bytes.
type Counter struct{ Packets, Bytes uint64 }

// Path is one tunnel path's numbers.
type Path struct {
	ID         uint16
	Site, Link string
	Up         bool
	Usable     bool    // carries new flows (in the site's table)
	RTT        float64 // seconds; <0: not measured
	Jitter     float64 // seconds; <0: not measured
	Loss       float64 // ratio 0..1; <0: not measured
	Weight     uint64
	Share      float64 // of the site's table slots
	Traffic    Counter
}

// Source is what the collector reads at every scrape.
type Source interface {
	MetricPaths() []Path
	MetricRules() map[string]Counter    // by rule name ("default" for none)
	MetricReasons() map[string]Counter  // LAN program verdicts by reason
	MetricWANGuard() map[string]Counter // WAN program verdicts by reason
	Counters() map[string]uint64        // userspace data path counters
	MetricEvents() map[string]uint64    // events published, by type
	MetricFailovers() (failovers, failbacks uint64)
}

var (
	descPathUp      = prometheus.NewDesc("xwan_path_up", "1 if the path's tunnel session is up.", []string{"path", "site", "link"}, nil)
	descPathUsable  = prometheus.NewDesc("xwan_path_usable", "1 if the path takes new flows (it is in its site's path table).", []string{"path", "site", "link"}, nil)
	descPathRTT     = prometheus.NewDesc("xwan_path_rtt_seconds", "Round-trip time of the path's in-tunnel probes.", []string{"path", "site", "link"}, nil)
	descPathJitter  = prometheus.NewDesc("xwan_path_jitter_seconds", "Jitter of the path's probes (RFC 3550 smoothing).", []string{"path", "site", "link"}, nil)
	descPathLoss    = prometheus.NewDesc("xwan_path_loss_ratio", "Share of the path's probes lost over the measurement window.", []string{"path", "site", "link"}, nil)
	descPathShare   = prometheus.NewDesc("xwan_path_table_share_ratio", "Share of its site's path table the path holds.", []string{"path", "site", "link"}, nil)
	descPathWeight  = prometheus.NewDesc("xwan_path_weight", "Configured weight (link bandwidth, bit/s) of the path.", []string{"path", "site", "link"}, nil)
	descPathPackets = prometheus.NewDesc("xwan_path_packets_total", "Packets the LAN program sent to the path.", []string{"path", "site", "link"}, nil)
	descPathBytes   = prometheus.NewDesc("xwan_path_bytes_total", "Bytes the LAN program sent to the path.", []string{"path", "site", "link"}, nil)
	descRulePackets = prometheus.NewDesc("xwan_rule_packets_total", "Packets decided by the rule.", []string{"rule"}, nil)
	descRuleBytes   = prometheus.NewDesc("xwan_rule_bytes_total", "Bytes decided by the rule.", []string{"rule"}, nil)
	descLANPackets  = prometheus.NewDesc("xwan_lan_packets_total", "Frames seen by the LAN program, by verdict reason (drops and malformed frames included).", []string{"reason"}, nil)
	descLANBytes    = prometheus.NewDesc("xwan_lan_bytes_total", "Bytes seen by the LAN program, by verdict reason.", []string{"reason"}, nil)
	descWANPackets  = prometheus.NewDesc("xwan_wan_guard_packets_total", "Frames seen by the WAN guard, by reason (unknown_peer are dropped).", []string{"reason"}, nil)
	descUserspace   = prometheus.NewDesc("xwan_dataplane_userspace_packets_total", "Packets handled by xwand's userspace data path, by what happened.", []string{"what"}, nil)
	descEvents      = prometheus.NewDesc("xwan_events_total", "Events published, by type.", []string{"type"}, nil)
	descFailovers   = prometheus.NewDesc("xwan_path_failovers_total", "Times a site's new flows moved away from paths that became unacceptable or went down.", nil, nil)
	descFailbacks   = prometheus.NewDesc("xwan_path_failbacks_total", "Times a site's new flows returned to paths acceptable again after the hold-down.", nil, nil)
)

type collector struct{ src Source }

// NewRegistry returns a registry holding the collector for src and the Go
// runtime and process collectors.
func NewRegistry(src Source) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collector{src}, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return r
}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPathUp, descPathUsable, descPathRTT, descPathJitter, descPathLoss, descPathShare,
		descPathWeight, descPathPackets, descPathBytes, descRulePackets, descRuleBytes, descLANPackets, descLANBytes,
		descWANPackets, descUserspace, descEvents, descFailovers, descFailbacks} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for _, p := range c.src.MetricPaths() {
		l := []string{strconv.Itoa(int(p.ID)), p.Site, p.Link}
		ch <- prometheus.MustNewConstMetric(descPathUp, gauge, b2f(p.Up), l...)
		ch <- prometheus.MustNewConstMetric(descPathUsable, gauge, b2f(p.Usable), l...)
		for _, m := range []struct {
			d *prometheus.Desc
			v float64
		}{{descPathRTT, p.RTT}, {descPathJitter, p.Jitter}, {descPathLoss, p.Loss}} {
			if m.v >= 0 {
				ch <- prometheus.MustNewConstMetric(m.d, gauge, m.v, l...)
			}
		}
		ch <- prometheus.MustNewConstMetric(descPathShare, gauge, p.Share, l...)
		ch <- prometheus.MustNewConstMetric(descPathWeight, gauge, float64(p.Weight), l...)
		ch <- prometheus.MustNewConstMetric(descPathPackets, counter, float64(p.Traffic.Packets), l...)
		ch <- prometheus.MustNewConstMetric(descPathBytes, counter, float64(p.Traffic.Bytes), l...)
	}
	for name, v := range c.src.MetricRules() {
		ch <- prometheus.MustNewConstMetric(descRulePackets, counter, float64(v.Packets), name)
		ch <- prometheus.MustNewConstMetric(descRuleBytes, counter, float64(v.Bytes), name)
	}
	for reason, v := range c.src.MetricReasons() {
		ch <- prometheus.MustNewConstMetric(descLANPackets, counter, float64(v.Packets), reason)
		ch <- prometheus.MustNewConstMetric(descLANBytes, counter, float64(v.Bytes), reason)
	}
	for reason, v := range c.src.MetricWANGuard() {
		ch <- prometheus.MustNewConstMetric(descWANPackets, counter, float64(v.Packets), reason)
	}
	for what, v := range c.src.Counters() {
		ch <- prometheus.MustNewConstMetric(descUserspace, counter, float64(v), what)
	}
	for typ, v := range c.src.MetricEvents() {
		ch <- prometheus.MustNewConstMetric(descEvents, counter, float64(v), typ)
	}
	fo, fb := c.src.MetricFailovers()
	ch <- prometheus.MustNewConstMetric(descFailovers, counter, float64(fo))
	ch <- prometheus.MustNewConstMetric(descFailbacks, counter, float64(fb))
}
