package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeSource struct{}

func (fakeSource) MetricPaths() []Path {
	return []Path{
		{ID: 1, Site: "b", Link: "wan1", Up: true, Usable: true, RTT: 0.002, Jitter: 0.0005, Loss: 0.01, Weight: 100e6, Share: 0.5, Traffic: Counter{10, 1000}},
		{ID: 2, Site: "b", Link: "wan2", RTT: -1, Jitter: -1, Loss: -1},
	}
}
func (fakeSource) MetricRules() map[string]Counter {
	return map[string]Counter{"web": {3, 300}, "default": {1, 64}}
}
func (fakeSource) MetricReasons() map[string]Counter { return map[string]Counter{"redirect": {5, 500}} }
func (fakeSource) MetricWANGuard() map[string]Counter {
	return map[string]Counter{"unknown_peer": {2, 120}}
}
func (fakeSource) Counters() map[string]uint64       { return map[string]uint64{"lan_to_tunnel": 7} }
func (fakeSource) MetricEvents() map[string]uint64   { return map[string]uint64{"path_failover": 1} }
func (fakeSource) MetricFailovers() (uint64, uint64) { return 1, 0 }

func TestCollector(t *testing.T) {
	r := NewRegistry(fakeSource{})
	problems, err := testutil.GatherAndLint(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "xwan_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	want := `
# HELP xwan_path_rtt_seconds Round-trip time of the path's in-tunnel probes.
# TYPE xwan_path_rtt_seconds gauge
xwan_path_rtt_seconds{link="wan1",path="1",site="b"} 0.002
`
	// A path without measurements has no RTT series at all.
	if err := testutil.GatherAndCompare(r, strings.NewReader(want), "xwan_path_rtt_seconds"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(collector{fakeSource{}}, "xwan_path_up"); n != 2 {
		t.Fatalf("%d xwan_path_up series", n)
	}
}
