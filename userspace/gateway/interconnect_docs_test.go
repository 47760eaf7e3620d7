package gateway

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/config"
)

// The configuration examples in docs/bgp.md must load as xwand's file
// (snake_case keys, every check of userspace/config), map onto a
// bgp.Config the library accepts, and say what the page says they do: the
// page cannot drift from the code.
func TestDocsExamples(t *testing.T) {
	raw, err := os.ReadFile("../../docs/bgp.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```yaml\n")[1:]
	if len(blocks) != 3 {
		t.Fatalf("found %d yaml examples, want 3 (every key of bgp:, of lan_monitoring: and notifications:, Azure)", len(blocks))
	}
	const rest = `site: site-a
lan: {interfaces: [lan0], prefixes: [198.18.10.0/24]}
wan: [{name: wan1, interface: wan1, bandwidth: {up: 100Mbit, down: 100Mbit}}]
certificates: {ca: ca.pem, cert: site-a.pem, key: site-a-key.pem}
`
	var cfgs []*config.Config
	for i, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		cfg, err := config.Parse(fmt.Sprintf("docs/bgp.md example %d", i+1), []byte(b+rest))
		if err != nil {
			t.Fatalf("example %d:\n%v", i+1, err)
		}
		if cfg.BGP != nil {
			if bc := bgpConfig(cfg.BGP); bc.Validate() != nil {
				err := bc.Validate()
				t.Errorf("example %d: the library refuses it: %v", i+1, err)
			}
		}
		cfgs = append(cfgs, cfg)
	}
	n := cfgs[0].BGP.Neighbors[0]
	if n.HoldTime != 90*time.Second || n.PeerAddress.String() != "169.254.10.2" || n.PeerASN != 12076 ||
		n.PrefixLimitRestart.After != 5*time.Minute || n.Prepend != 2 || !cfgs[0].BGP.Kernel.Install {
		t.Errorf("first example read as %+v", n)
	}
	if m := cfgs[1].LANMonitoring.Targets; len(m) != 1 || m[0].DownAfter != 3 || len(cfgs[1].Notifications.Channels) != 2 {
		t.Errorf("second example read as %+v %+v", cfgs[1].LANMonitoring, cfgs[1].Notifications)
	}
	az := cfgs[2].BGP
	if len(az.Neighbors) != 2 || az.Neighbors[0].Metric != 90 || az.Neighbors[1].Metric != 100 ||
		!az.Neighbors[0].AdvertiseAll || !az.Neighbors[1].AcceptDynamic || az.Neighbors[0].Password != "shared-key-circuit-1" {
		t.Errorf("Azure example read as %+v", az)
	}
}
