package config_test

import (
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/config"
	"github.com/xwan-dev/xwan/userspace/events"
)

// bgpBase is a valid bgp: section; lines 15.. of plus(bgpBase).
const bgpBase = `bgp:
  asn: 65010
  neighbors:
    - name: msee1
      peer_address: 169.254.10.2
      peer_asn: 12076
      local_address: 169.254.10.1
`

// withBGP replaces old (which must be in bgpBase) by new, after base.
func withBGP(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(bgpBase, old) {
		t.Fatalf("bgpBase has no %q", old)
	}
	return plus(strings.Replace(bgpBase, old, new, 1))
}

// nb adds keys to the neighbour (lines 22..).
func nb(keys string) string { return plus(bgpBase + keys) }

func TestBrokenInterconnectConfigs(t *testing.T) {
	tests := []struct {
		name string
		yaml func(t *testing.T) string
		want string
	}{
		// bgp:
		{"bgp not a mapping", func(t *testing.T) string { return plus("bgp: yes\n") },
			`t.yaml:15: bgp: must be a mapping of asn, router_id, listen_port, listen_addresses, advertise_mesh, kernel, neighbors, got "yes"`},
		{"bgp without asn and neighbors", func(t *testing.T) string { return plus("bgp: {router_id: 169.254.10.1}\n") },
			"t.yaml:15: bgp.asn: required\nt.yaml:15: bgp.neighbors: required"},
		{"kebab-case key", func(t *testing.T) string { return withBGP(t, "      peer_asn: 12076\n", "      peer-asn: 12076\n") },
			"t.yaml:18: bgp.neighbors[0].peer_asn: required\n" +
				"t.yaml:20: bgp.neighbors[0].peer-asn: unknown field (did you mean peer_asn?)"},
		{"asn 0", func(t *testing.T) string { return withBGP(t, "asn: 65010", "asn: 0") },
			`t.yaml:16: bgp.asn: must be an AS number 1-4294967294, got 0`},
		{"asn AS_TRANS", func(t *testing.T) string { return withBGP(t, "asn: 65010", "asn: 23456") },
			`t.yaml:16: bgp.asn: 23456 is AS_TRANS, not a real AS`},
		{"asn 65535", func(t *testing.T) string { return withBGP(t, "peer_asn: 12076", "peer_asn: 65535") },
			`t.yaml:20: bgp.neighbors[0].peer_asn: 65535 is reserved`},
		{"asn too large", func(t *testing.T) string { return withBGP(t, "asn: 65010", "asn: 4294967295") },
			`t.yaml:16: bgp.asn: must be an AS number 1-4294967294, got 4294967295`},
		{"router id IPv6", func(t *testing.T) string {
			return withBGP(t, "  asn: 65010\n", "  asn: 65010\n  router_id: 2001:db8::1\n")
		},
			`t.yaml:17: bgp.router_id: 2001:db8::1: the BGP identifier must be an IPv4 address`},
		{"router id required", func(t *testing.T) string { return withBGP(t, "      local_address: 169.254.10.1\n", "") },
			`t.yaml:15: bgp.router_id: required when no neighbor has an IPv4 local_address`},
		{"listen port 0", func(t *testing.T) string { return withBGP(t, "  asn: 65010\n", "  asn: 65010\n  listen_port: 0\n") },
			`t.yaml:17: bgp.listen_port: must be -1 (do not listen) or a TCP port 1-65535, got 0`},
		{"kernel table 255", func(t *testing.T) string { return plus(bgpBase + "  kernel: {table: 255}\n") },
			`t.yaml:22: bgp.kernel.table: 255 is the kernel's local table; use 254 (main) or a table of your own`},
		{"kernel install not a bool", func(t *testing.T) string { return plus(bgpBase + "  kernel: {install: yes}\n") },
			`t.yaml:22: bgp.kernel.install: must be true or false, got "yes"`},
		{"no neighbors", func(t *testing.T) string {
			return plus("bgp:\n  asn: 65010\n  router_id: 169.254.10.1\n  neighbors: []\n")
		},
			`t.yaml:18: bgp.neighbors: at least one neighbor is required (or leave bgp out)`},
		{"neighbor without peer", func(t *testing.T) string {
			return plus("bgp:\n  asn: 65010\n  router_id: 169.254.10.1\n  neighbors:\n    - name: msee1\n")
		},
			"t.yaml:19: bgp.neighbors[0].peer_address: required\nt.yaml:19: bgp.neighbors[0].peer_asn: required"},
		{"bad neighbor name", func(t *testing.T) string { return withBGP(t, "name: msee1", "name: \"msee 1\"") },
			`t.yaml:18: bgp.neighbors[0].name: "msee 1": use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)`},
		{"peer address not unicast", func(t *testing.T) string { return withBGP(t, "peer_address: 169.254.10.2", "peer_address: 224.0.0.5") },
			`t.yaml:19: bgp.neighbors[0].peer_address: "224.0.0.5" is not a unicast IP address`},
		{"ibgp", func(t *testing.T) string { return withBGP(t, "peer_asn: 12076", "peer_asn: 65010") },
			`t.yaml:20: bgp.neighbors[0].peer_asn: 65010 is this gateway's AS (bgp.asn): only eBGP neighbors are supported`},
		{"ibgp with local_asn", func(t *testing.T) string { return nb("      local_asn: 12076\n") },
			`t.yaml:20: bgp.neighbors[0].peer_asn: 12076 is this gateway's AS (bgp.neighbors[0].local_asn): only eBGP neighbors are supported`},
		{"local address of another family", func(t *testing.T) string {
			return withBGP(t, "local_address: 169.254.10.1", "local_address: 2001:db8::1\n  router_id: 169.254.10.1")
		}, "t.yaml:21: bgp.neighbors[0].local_address: 2001:db8::1 is not of the address family of peer_address 169.254.10.2"},
		{"password too long", func(t *testing.T) string { return nb("      password: " + strings.Repeat("k", 81) + "\n") },
			`t.yaml:22: bgp.neighbors[0].password: 81 bytes; TCP MD5 keys are at most 80`},
		{"hold time 0", func(t *testing.T) string { return nb("      hold_time: 0\n") },
			`t.yaml:22: bgp.neighbors[0].hold_time: 0 (no keepalives) is valid BGP, but the embedded BGP speaker cannot run without a hold timer; use 3s or more`},
		{"hold time 2s", func(t *testing.T) string { return nb("      hold_time: 2s\n") },
			`t.yaml:22: bgp.neighbors[0].hold_time: must be whole seconds from 3s to 18h12m15s, got 2s`},
		{"hold time fractional", func(t *testing.T) string { return nb("      hold_time: 9.5s\n") },
			`t.yaml:22: bgp.neighbors[0].hold_time: must be whole seconds from 3s to 18h12m15s, got 9.5s`},
		{"hold time without unit", func(t *testing.T) string { return nb("      hold_time: 90\n") },
			`t.yaml:22: bgp.neighbors[0].hold_time: must be a duration with a unit such as 10s or 300ms, got "90"`},
		{"keepalive over a third", func(t *testing.T) string { return nb("      hold_time: 9s\n      keepalive: 4s\n") },
			`t.yaml:23: bgp.neighbors[0].keepalive: 4s is more than a third of the hold time (9s)`},
		{"keepalive over a third of the default", func(t *testing.T) string { return nb("      keepalive: 40s\n") },
			`t.yaml:22: bgp.neighbors[0].keepalive: 40s is more than a third of the hold time (1m30s)`},
		{"connect retry 0", func(t *testing.T) string { return nb("      connect_retry: 0s\n") },
			`t.yaml:22: bgp.neighbors[0].connect_retry: must be whole seconds from 1s to 1h0m0s, got 0s`},
		{"metric 1000", func(t *testing.T) string { return nb("      metric: 1000\n") },
			`t.yaml:22: bgp.neighbors[0].metric: must be 1-999 (lower is preferred), got 1000`},
		{"prepend 11", func(t *testing.T) string { return nb("      prepend: 11\n") },
			`t.yaml:22: bgp.neighbors[0].prepend: must be 0 (none) to 10, got 11`},
		{"max received negative", func(t *testing.T) string { return nb("      max_received: -1\n") },
			`t.yaml:22: bgp.neighbors[0].max_received: must be a prefix count 0-4294967295 (0: no limit), got -1`},
		{"prefix limit restart bad", func(t *testing.T) string { return nb("      prefix_limit_restart: soon\n") },
			`t.yaml:22: bgp.neighbors[0].prefix_limit_restart: must be manual or a delay of at least 1s such as 5m, got "soon"`},
		{"prefix limit restart too short", func(t *testing.T) string { return nb("      prefix_limit_restart: 100ms\n") },
			`t.yaml:22: bgp.neighbors[0].prefix_limit_restart: must be manual or a delay of at least 1s such as 5m, got "100ms"`},
		{"accept_dynamic not a bool", func(t *testing.T) string { return nb("      accept_dynamic: on\n") },
			`t.yaml:22: bgp.neighbors[0].accept_dynamic: must be true or false, got "on"`},
		{"duplicate neighbor", func(t *testing.T) string {
			return nb("    - {name: msee1, peer_address: 169.254.10.2, peer_asn: 12076}\n")
		}, "t.yaml:22: bgp.neighbors[1].name: duplicate neighbor name \"msee1\" (first at line 18)\n" +
			"t.yaml:22: bgp.neighbors[1].peer_address: 169.254.10.2 is already the peer of bgp.neighbors[0] (line 19)"},

		// lan_monitoring:
		{"monitoring without targets", func(t *testing.T) string { return plus("lan_monitoring: {}\n") },
			`t.yaml:15: lan_monitoring.targets: required`},
		{"monitoring with empty targets", func(t *testing.T) string { return plus("lan_monitoring:\n  targets: []\n") },
			`t.yaml:16: lan_monitoring.targets: at least one target is required (or leave lan_monitoring out)`},
		{"target without address", func(t *testing.T) string { return plus("lan_monitoring:\n  targets:\n    - name: vm\n") },
			`t.yaml:17: lan_monitoring.targets[0].address: required`},
		{"target interval too short", func(t *testing.T) string {
			return plus("lan_monitoring:\n  targets:\n    - {name: vm, address: 198.18.200.4, interval: 10ms}\n")
		}, `t.yaml:17: lan_monitoring.targets[0].interval: must be between 100ms and 1h, got 10ms`},
		{"target timeout over the interval", func(t *testing.T) string {
			return plus("lan_monitoring:\n  targets:\n    - {name: vm, address: 198.18.200.4, interval: 500ms, timeout: 1s}\n")
		}, `t.yaml:17: lan_monitoring.targets[0].timeout: 1s is longer than the interval (500ms)`},
		{"target source of another family", func(t *testing.T) string {
			return plus("lan_monitoring:\n  targets:\n    - name: vm\n      address: 198.18.200.4\n      source: 2001:db8::1\n")
		}, `t.yaml:19: lan_monitoring.targets[0].source: 2001:db8::1 is not of the address family of address 198.18.200.4`},
		{"threshold out of range", func(t *testing.T) string {
			return plus("lan_monitoring:\n  targets:\n    - name: vm\n      address: 198.18.200.4\n      thresholds: {loss_percent: 0, window: 5000}\n")
		}, "t.yaml:19: lan_monitoring.targets[0].thresholds.loss_percent: must be a percentage 1-100, got 0\n" +
			"t.yaml:19: lan_monitoring.targets[0].thresholds.window: must be a number of probes 1-1000, got 5000"},
		{"unknown threshold", func(t *testing.T) string {
			return plus("lan_monitoring:\n  targets:\n    - name: vm\n      address: 198.18.200.4\n      thresholds: {down-after: 2}\n")
		}, `t.yaml:19: lan_monitoring.targets[0].thresholds.down-after: unknown field (did you mean down_after?)`},
		{"duplicate target", func(t *testing.T) string {
			return plus("lan_monitoring:\n  targets:\n    - {name: vm, address: 198.18.200.4}\n    - {name: vm, address: 198.18.200.5}\n")
		}, `t.yaml:18: lan_monitoring.targets[1].name: duplicate target name "vm" (first at line 17)`},

		// notifications:
		{"channel without destination", func(t *testing.T) string { return plus("notifications:\n  channels:\n    - name: noc\n") },
			`t.yaml:17: notifications.channels[0]: needs a webhook or an email`},
		{"channel with both", func(t *testing.T) string {
			return plus("notifications:\n  channels:\n    - name: noc\n      webhook: {url: \"http://198.18.10.10/\"}\n      email: {server: \"mx:25\", from: a@b.c, to: [d@e.f]}\n")
		}, `t.yaml:19: notifications.channels[0]: has both a webhook and an email: make one channel for each`},
		{"bad frequency", func(t *testing.T) string {
			return plus("notifications:\n  channels:\n    - name: noc\n      frequency: monthly\n      webhook: {url: \"http://198.18.10.10/\"}\n")
		}, `t.yaml:18: notifications.channels[0].frequency: must be immediate, hourly, daily or weekly, got "monthly"`},
		{"unknown event kind", func(t *testing.T) string {
			return plus("notifications:\n  channels:\n    - name: noc\n      events: [bgp_down]\n      webhook: {url: \"http://198.18.10.10/\"}\n")
		}, `t.yaml:18: notifications.channels[0].events[0]: unknown event kind "bgp_down" (want all, bgp_session_up, bgp_session_down, bgp_routes_added, bgp_routes_withdrawn, bgp_prefix_limit, lan_monitor_up, lan_monitor_down)`},
		{"webhook url not http", func(t *testing.T) string {
			return plus("notifications:\n  channels:\n    - name: noc\n      webhook: {url: \"ftp://198.18.10.10/\"}\n")
		}, `t.yaml:18: notifications.channels[0].webhook.url: must be an http:// or https:// URL, got "ftp://198.18.10.10/"`},
		{"webhook header with a line break", func(t *testing.T) string {
			return plus("notifications:\n  channels:\n    - name: noc\n      webhook:\n        url: \"http://198.18.10.10/\"\n        headers: {X-Token: \"a\\nb\"}\n")
		}, `t.yaml:20: notifications.channels[0].webhook.headers.X-Token: header values must be one line`},
		{"email without recipients", func(t *testing.T) string {
			return plus("notifications:\n  channels:\n    - name: noc\n      email: {server: \"smtp.example.com:587\", from: xwan@example.com, to: []}\n")
		}, `t.yaml:18: notifications.channels[0].email.to: at least one recipient is required`},
		{"email bad addresses", func(t *testing.T) string {
			return plus("notifications:\n  channels:\n    - name: noc\n      email:\n        server: smtp.example.com\n        from: xwan\n        to: [noc@example.com]\n        username: xwan\n")
		}, "t.yaml:19: notifications.channels[0].email.server: must be host:port such as smtp.example.com:587, got \"smtp.example.com\"\n" +
			"t.yaml:20: notifications.channels[0].email.from: \"xwan\" is not an e-mail address\n" +
			"t.yaml:22: notifications.channels[0].email.password: required with username (SMTP authentication needs both)"},
		{"duplicate channel", func(t *testing.T) string {
			return plus("notifications:\n  channels:\n    - {name: noc, webhook: {url: \"http://198.18.10.10/\"}}\n    - {name: noc, webhook: {url: \"http://198.18.10.11/\"}}\n")
		}, `t.yaml:18: notifications.channels[1].name: duplicate channel name "noc" (first at line 17)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(tc.yaml(t)))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml(t))
			}
			if cfg != nil {
				t.Error("a Config came back with the error")
			}
			if err.Error() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", err, tc.want)
			}
			var list config.Errors
			if !errors.As(err, &list) || len(list) != strings.Count(tc.want, "\n")+1 {
				t.Errorf("error is not an Errors with one entry per line: %#v", err)
			}
		})
	}
}

func TestInterconnectExample(t *testing.T) {
	cfg, _ := mustLoad(t, "interconnect.yaml")
	a := netip.MustParseAddr
	want := &config.BGP{
		ASN: 65010, RouterID: a("169.254.10.1"), ListenPort: 179,
		ListenAddresses: []netip.Addr{a("169.254.10.1"), a("169.254.10.5")},
		AdvertiseMesh:   true,
		Kernel:          config.BGPKernel{Install: true, Table: 254, Priority: 20},
		Neighbors: []config.BGPNeighbor{
			{Name: "er-primary", PeerAddress: a("169.254.10.2"), PeerASN: 12076, LocalASN: 65010, LocalAddress: a("169.254.10.1"),
				Password: "shared-key-circuit-1", HoldTime: 90 * time.Second, Keepalive: 30 * time.Second, ConnectRetry: 5 * time.Second,
				Metric: 90, Prepend: 2, AdvertiseAll: true, AcceptDynamic: true, MaxReceived: 1000,
				PrefixLimitRestart: config.PrefixLimitRestart{After: 5 * time.Minute}, MaxAdvertised: 4000},
			{Name: "er-secondary", PeerAddress: a("169.254.10.6"), PeerASN: 12076, LocalASN: 65010, LocalAddress: a("169.254.10.5"),
				Password: "shared-key-circuit-2", HoldTime: 90 * time.Second, Keepalive: 30 * time.Second, ConnectRetry: 5 * time.Second,
				Metric: 100, Prepend: 2, AdvertiseAll: true, AcceptDynamic: true, MaxReceived: 1000,
				PrefixLimitRestart: config.PrefixLimitRestart{Manual: true}, MaxAdvertised: 4000},
		},
	}
	if !reflect.DeepEqual(cfg.BGP, want) {
		t.Errorf("bgp:\ngot  %+v\nwant %+v", cfg.BGP, want)
	}
	wantMon := config.LANMonitoring{Targets: []config.MonitorTarget{
		{Name: "vnet-vm", Address: a("198.18.200.4"), Source: a("198.18.10.1"), Interval: 2 * time.Second, Timeout: time.Second,
			DownAfter: 3, UpAfter: 2, LossPercent: 50, Window: 10},
		{Name: "dc-router", Address: a("198.18.10.254"), Interval: 2 * time.Second, Timeout: time.Second,
			DownAfter: 3, UpAfter: 2, LossPercent: 50, Window: 10},
	}}
	if !reflect.DeepEqual(cfg.LANMonitoring, wantMon) {
		t.Errorf("lan_monitoring:\ngot  %+v\nwant %+v", cfg.LANMonitoring, wantMon)
	}
	wantNotify := config.Notifications{Channels: []config.NotifyChannel{
		{Name: "noc-webhook", Frequency: config.Immediate,
			Events:  []events.Type{events.BGPPrefixLimit, events.BGPSessionDown, events.LANMonitorDown},
			Webhook: &config.Webhook{URL: "https://hooks.example.com/xwan", Headers: map[string]string{"Authorization": "Bearer example-token"}}},
		{Name: "noc-mail", Frequency: config.Daily,
			Events: []events.Type{events.BGPPrefixLimit, events.BGPRoutesAdded, events.BGPRoutesWithdrawn, events.BGPSessionDown,
				events.BGPSessionUp, events.LANMonitorDown, events.LANMonitorUp},
			Email: &config.Email{Server: "smtp.example.com:587", From: "xwan@example.com", To: []string{"noc@example.com"},
				Username: "xwan", Password: "example-password", RequireTLS: true}},
	}}
	if !reflect.DeepEqual(cfg.Notifications, wantNotify) {
		t.Errorf("notifications:\ngot  %+v\nwant %+v", cfg.Notifications, wantNotify)
	}
}

// The smallest interconnect sections get every default, including the
// booleans that default to true.
func TestInterconnectDefaults(t *testing.T) {
	text := plus(bgpBase +
		"lan_monitoring:\n  targets:\n    - {name: vm, address: 198.18.200.4, interval: 500ms}\n" +
		"notifications:\n  channels:\n    - {name: noc, webhook: {url: \"http://198.18.10.10:8080/hook\"}}\n")
	cfg, err := config.Parse(filepath.Join("dir", "t.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	want := &config.BGP{
		ASN: 65010, RouterID: a("169.254.10.1"), ListenPort: config.DefaultBGPPort, AdvertiseMesh: true,
		Kernel: config.BGPKernel{Install: true, Table: config.DefaultKernelTable, Priority: config.DefaultKernelPriority},
		Neighbors: []config.BGPNeighbor{{
			Name: "msee1", PeerAddress: a("169.254.10.2"), PeerASN: 12076, LocalASN: 65010, LocalAddress: a("169.254.10.1"),
			HoldTime: config.DefaultBGPHoldTime, Keepalive: 30 * time.Second, ConnectRetry: config.DefaultBGPConnectRetry,
			Metric: config.DefaultBGPMetric, Prepend: config.DefaultBGPPrepend, AdvertiseAll: true, AcceptDynamic: true,
			PrefixLimitRestart: config.PrefixLimitRestart{After: config.DefaultPrefixLimitRestart},
		}},
	}
	if !reflect.DeepEqual(cfg.BGP, want) {
		t.Errorf("bgp:\ngot  %+v\nwant %+v", cfg.BGP, want)
	}
	tg := cfg.LANMonitoring.Targets[0]
	if tg.Interval != 500*time.Millisecond || tg.Timeout != 500*time.Millisecond || tg.DownAfter != 3 || tg.UpAfter != 2 ||
		tg.LossPercent != 50 || tg.Window != 10 || tg.Source.IsValid() {
		t.Errorf("target defaults: %+v", tg)
	}
	ch := cfg.Notifications.Channels[0]
	if ch.Frequency != config.Immediate || !reflect.DeepEqual(ch.Events, config.DefaultNotifyEvents) {
		t.Errorf("channel defaults: %+v", ch)
	}

	// Explicit false, 0 and -1 are kept, not replaced by defaults.
	cfg, err = config.Parse("t.yaml", []byte(plus(strings.Replace(bgpBase, "  neighbors:", "  listen_port: -1\n  advertise_mesh: false\n  kernel: {install: false}\n  neighbors:", 1)+
		"      prepend: 0\n      advertise_all: false\n      accept_dynamic: false\n      hold_time: 9s\n")))
	if err != nil {
		t.Fatal(err)
	}
	b, n := cfg.BGP, cfg.BGP.Neighbors[0]
	if b.ListenPort != -1 || b.AdvertiseMesh || b.Kernel.Install || n.Prepend != 0 || n.AdvertiseAll || n.AcceptDynamic || n.Keepalive != 3*time.Second {
		t.Errorf("explicit values lost: %+v %+v", b, n)
	}

	// No interconnect sections: nothing of it.
	cfg, err = config.Parse("t.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BGP != nil || cfg.LANMonitoring.Targets != nil || cfg.Notifications.Channels != nil {
		t.Errorf("interconnect without sections: %+v %+v %+v", cfg.BGP, cfg.LANMonitoring, cfg.Notifications)
	}
}
