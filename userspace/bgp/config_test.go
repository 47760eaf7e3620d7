package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// azure is a valid two-circuit ExpressRoute configuration, the base every
// bad case below changes in one place.
func azure() Config {
	return Config{
		ASN: 65010,
		Neighbors: []Neighbor{
			{
				Name: "msee1", PeerAddress: netip.MustParseAddr("169.254.10.2"), PeerASN: 12076,
				LocalAddress: netip.MustParseAddr("169.254.10.1"), Password: "secret",
				Metric: 90, AdvertiseAll: true, AcceptDynamic: true,
			},
			{
				Name: "msee2", PeerAddress: netip.MustParseAddr("169.254.10.6"), PeerASN: 12076,
				LocalAddress: netip.MustParseAddr("169.254.10.5"), Password: "secret",
				Metric: 100, AdvertiseAll: true, AcceptDynamic: true,
			},
		},
	}
}

func TestValidateAcceptsAzureExample(t *testing.T) {
	c := azure()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	d := c.withDefaults()
	if d.RouterID != netip.MustParseAddr("169.254.10.1") {
		t.Errorf("router id = %v, want the first local address", d.RouterID)
	}
	n := d.Neighbors[0]
	if n.HoldTime != 90*time.Second || n.Keepalive != 30*time.Second || n.ConnectRetry != DefaultConnectRetry {
		t.Errorf("timers = %v/%v/%v, want 90s/30s/%v", n.HoldTime, n.Keepalive, n.ConnectRetry, DefaultConnectRetry)
	}
	if n.LocalASN != 65010 || d.ListenPort != 179 || d.Kernel.Table != MainTable || d.Kernel.Priority != DefaultKernelPriority {
		t.Errorf("defaults not applied: %+v", d)
	}
	if got := (Neighbor{HoldTime: 10 * time.Second}); (Config{Neighbors: []Neighbor{got}}).withDefaults().Neighbors[0].Keepalive != 3*time.Second {
		t.Errorf("keepalive default for hold 10s is not 3s")
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"no asn", func(c *Config) { c.ASN = 0 }, `bgp: asn: required (0 is reserved)`},
		{"as_trans", func(c *Config) { c.ASN = 23456 }, `bgp: asn: 23456 is AS_TRANS, not a real AS`},
		{"router id v6", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }, `bgp: router-id 2001:db8::1: must be a non-zero IPv4 address`},
		{"no router id", func(c *Config) {
			c.Neighbors[0].LocalAddress, c.Neighbors[1].LocalAddress = netip.Addr{}, netip.Addr{}
		}, `bgp: router-id: required when no neighbor has an IPv4 local-address`},
		{"listen port", func(c *Config) { c.ListenPort = 70000 }, `bgp: listen-port 70000: must be -1 (do not listen), 0 (179) or a port number`},
		{"table 255", func(c *Config) { c.Kernel.Table = 255 }, `bgp: kernel table 255: must be 0 (main) or a table id other than 255 (local)`},
		{"no name", func(c *Config) { c.Neighbors[1].Name = "" }, `bgp: neighbor #2: name: required`},
		{"bad name", func(c *Config) { c.Neighbors[1].Name = "ms ee" }, `bgp: neighbor "ms ee": name: use letters, digits, '.', '_' and '-' (at most 64)`},
		{"dup name", func(c *Config) { c.Neighbors[1].Name = "msee1" }, `bgp: neighbor "msee1": name: used twice`},
		{"no peer address", func(c *Config) { c.Neighbors[0].PeerAddress = netip.Addr{} }, `bgp: neighbor "msee1": peer-address: required`},
		{"multicast peer", func(c *Config) { c.Neighbors[0].PeerAddress = netip.MustParseAddr("224.0.0.5") }, `bgp: neighbor "msee1": peer-address 224.0.0.5: must be a unicast address`},
		{"dup peer address", func(c *Config) { c.Neighbors[1].PeerAddress = c.Neighbors[0].PeerAddress }, `bgp: neighbor "msee2": peer-address 169.254.10.2: already used by neighbor "msee1"`},
		{"no peer asn", func(c *Config) { c.Neighbors[0].PeerASN = 0 }, `bgp: neighbor "msee1": peer-asn: required (0 is reserved)`},
		{"ibgp", func(c *Config) { c.Neighbors[0].PeerASN = 65010 }, `bgp: neighbor "msee1": peer-asn 65010 equals the local AS: only eBGP neighbours are supported`},
		{"local asn reserved", func(c *Config) { c.Neighbors[0].LocalASN = 65535 }, `bgp: neighbor "msee1": local-asn: 65535 is reserved`},
		{"family mismatch", func(c *Config) { c.Neighbors[0].LocalAddress = netip.MustParseAddr("2001:db8::1") }, `bgp: neighbor "msee1": local-address 2001:db8::1: not the same address family as peer-address 169.254.10.2`},
		{"long password", func(c *Config) { c.Neighbors[0].Password = strings.Repeat("x", 81) }, `bgp: neighbor "msee1": password: 81 bytes, TCP MD5 keys are at most 80`},
		{"hold 0", func(c *Config) { c.Neighbors[0].HoldTime = NoHoldTime }, `bgp: neighbor "msee1": hold-time 0: BGP allows it, but the embedded gobgp cannot run without a hold timer; use 3s or more`},
		{"hold 2s", func(c *Config) { c.Neighbors[0].HoldTime = 2 * time.Second }, `bgp: neighbor "msee1": hold-time 2s: must be 0 or at least 3s (RFC 4271)`},
		{"hold fraction", func(c *Config) { c.Neighbors[0].HoldTime = 4500 * time.Millisecond }, `bgp: neighbor "msee1": hold-time 4.5s: must be whole seconds`},
		{"hold too long", func(c *Config) { c.Neighbors[0].HoldTime = 65536 * time.Second }, `bgp: neighbor "msee1": hold-time 18h12m16s: must be at most 65535s`},
		{"keepalive over a third", func(c *Config) {
			c.Neighbors[0].HoldTime, c.Neighbors[0].Keepalive = 30*time.Second, 11*time.Second
		}, `bgp: neighbor "msee1": keepalive 11s: must be at most a third of the hold time (30s)`},
		{"keepalive over a third of the default", func(c *Config) { c.Neighbors[0].Keepalive = 31 * time.Second }, `bgp: neighbor "msee1": keepalive 31s: must be at most a third of the hold time (1m30s)`},
		{"connect retry fraction", func(c *Config) { c.Neighbors[0].ConnectRetry = 1500 * time.Millisecond }, `bgp: neighbor "msee1": connect-retry 1.5s: must be whole seconds`},
		{"metric", func(c *Config) { c.Neighbors[0].Metric = 1000 }, `bgp: neighbor "msee1": metric 1000: must be between 1 and 999 (0 means 100)`},
		{"prepend", func(c *Config) { c.Neighbors[0].Prepend = 11 }, `bgp: neighbor "msee1": prepend 11: must be between 1 and 10 (0 means 2, -1 none)`},
		{"max advertised", func(c *Config) { c.Neighbors[0].MaxAdvertised = -1 }, `bgp: neighbor "msee1": max-advertised -1: must not be negative`},
		{"restart both", func(c *Config) { c.Neighbors[0].PrefixLimitRestart = RestartPolicy{Manual: true, After: time.Minute} }, `bgp: neighbor "msee1": prefix-limit restart: manual and a delay are exclusive`},
		{"restart short", func(c *Config) { c.Neighbors[0].PrefixLimitRestart = RestartPolicy{After: time.Millisecond} }, `bgp: neighbor "msee1": prefix-limit restart delay 1ms: must be at least 1s`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := azure()
			tc.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Fatalf("error:\n got %q\nwant %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := azure()
	c.Neighbors[0].Metric = -1
	c.Neighbors[1].PeerASN = 0
	err := c.Validate()
	want := "bgp: neighbor \"msee1\": metric -1: must be between 1 and 999 (0 means 100)\n" +
		"bgp: neighbor \"msee2\": peer-asn: required (0 is reserved)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want\n%s", err, want)
	}
}

func TestParseRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    RestartPolicy
		wantStr string
		err     string
	}{
		{in: "", want: RestartPolicy{}, wantStr: "5m0s"},
		{in: "manual", want: RestartPolicy{Manual: true}, wantStr: "manual"},
		{in: " Manual ", want: RestartPolicy{Manual: true}, wantStr: "manual"},
		{in: "30s", want: RestartPolicy{After: 30 * time.Second}, wantStr: "30s"},
		{in: "never", err: `prefix-limit restart "never": want "manual" or a duration such as "5m"`},
		{in: "10ms", err: `prefix-limit restart delay 10ms: must be at least 1s`},
	} {
		got, err := ParseRestartPolicy(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseRestartPolicy(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.wantStr {
			t.Errorf("ParseRestartPolicy(%q) = %+v (%q), %v; want %+v (%q)", tc.in, got, got, err, tc.want, tc.wantStr)
		}
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	c := azure()
	c.ASN = 0
	if _, err := New(c, Options{}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}
