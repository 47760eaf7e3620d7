package gateway

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/bgp"
	"github.com/xwan-dev/xwan/userspace/config"
	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/monitor"
	"github.com/xwan-dev/xwan/userspace/notify"
)

func loadInterconnect(t *testing.T, extra string) *config.Config {
	t.Helper()
	if extra == "" {
		cfg, err := config.Load("../../testdata/config/interconnect.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg, err := config.Parse("t.yaml", []byte(extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The configuration's bgp: section maps onto a bgp.Config the library
// accepts, field by field.
func TestBGPConfigMapping(t *testing.T) {
	cfg := loadInterconnect(t, "")
	got := bgpConfig(cfg.BGP)
	if err := got.Validate(); err != nil {
		t.Fatalf("the library refuses the mapped example: %v", err)
	}
	a := netip.MustParseAddr
	n := func(name, peer, local, password string, metric int, restart bgp.RestartPolicy) bgp.Neighbor {
		return bgp.Neighbor{Name: name, PeerAddress: a(peer), PeerASN: 12076, LocalASN: 65010, LocalAddress: a(local), Password: password,
			HoldTime: 90 * time.Second, Keepalive: 30 * time.Second, ConnectRetry: 5 * time.Second, Metric: metric, Prepend: 2,
			AdvertiseAll: true, AcceptDynamic: true, MaxReceived: 1000, PrefixLimitRestart: restart, MaxAdvertised: 4000}
	}
	want := bgp.Config{
		ASN: 65010, RouterID: a("169.254.10.1"), ListenPort: 179, ListenAddresses: []netip.Addr{a("169.254.10.1"), a("169.254.10.5")},
		Kernel: bgp.KernelConfig{Install: true, Table: 254, Priority: 20},
		Neighbors: []bgp.Neighbor{
			n("er-primary", "169.254.10.2", "169.254.10.1", "shared-key-circuit-1", 90, bgp.RestartPolicy{After: 5 * time.Minute}),
			n("er-secondary", "169.254.10.6", "169.254.10.5", "shared-key-circuit-2", 100, bgp.RestartPolicy{Manual: true}),
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// Edge values the configuration accepts are accepted by the library too,
// with the file's meaning (prepend 0 is none, listen_port -1 no listener).
func TestBGPConfigEdges(t *testing.T) {
	cfg := loadInterconnect(t, `site: a
lan: {interfaces: [lan0], prefixes: [198.18.10.0/24]}
wan: [{name: wan1, interface: wan1, bandwidth: {up: 1Mbit, down: 1Mbit}}]
certificates: {ca: ca.pem, cert: a.pem, key: a-key.pem}
bgp:
  asn: 4200000000
  router_id: 198.18.10.1
  listen_port: -1
  kernel: {install: false, table: 100, priority: 4294967295}
  neighbors:
    - {name: v6, peer_address: "2001:db8::2", peer_asn: 12076, local_address: "2001:db8::1", hold_time: 3s, keepalive: 1s,
       connect_retry: 1h, metric: 999, prepend: 0, max_advertised: 2147483647, max_received: 4294967295,
       prefix_limit_restart: 1s, password: "`+strings.Repeat("k", 80)+`"}
    - {name: a.b_c-1, peer_address: 169.254.10.2, peer_asn: 1, local_asn: 64512, hold_time: 65535s, keepalive: 21845s,
       metric: 1, prepend: 10, prefix_limit_restart: MANUAL}
`)
	got := bgpConfig(cfg.BGP)
	if err := got.Validate(); err != nil {
		t.Fatalf("the library refuses what the configuration accepted: %v", err)
	}
	if got.ListenPort != -1 || got.Neighbors[0].Prepend != bgp.NoPrepend || got.Neighbors[1].Prepend != 10 ||
		got.Kernel.Install || !got.Neighbors[1].PrefixLimitRestart.Manual {
		t.Errorf("mapped: %+v", got)
	}
	if _, err := bgp.New(got, bgp.Options{}); err != nil {
		t.Errorf("bgp.New: %v", err)
	}
}

func TestAdvertisedNetworks(t *testing.T) {
	cfg := loadInterconnect(t, "")
	p := netip.MustParsePrefix
	if got := advertisedNetworks(cfg); !reflect.DeepEqual(got, []netip.Prefix{p("198.18.10.0/24"), p("198.18.20.0/24")}) {
		t.Errorf("with advertise_mesh: %v", got)
	}
	cfg.BGP.AdvertiseMesh = false
	if got := advertisedNetworks(cfg); !reflect.DeepEqual(got, []netip.Prefix{p("198.18.10.0/24")}) {
		t.Errorf("without advertise_mesh: %v", got)
	}
}

func TestMonitorAndNotifyMapping(t *testing.T) {
	cfg := loadInterconnect(t, "")
	ts := monitorTargets(cfg.LANMonitoring.Targets)
	if _, err := monitor.New(ts, monitor.Options{}); err != nil {
		t.Fatalf("the monitor refuses the mapped targets: %v", err)
	}
	if ts[0] != (monitor.Target{Name: "vnet-vm", Address: netip.MustParseAddr("198.18.200.4"), Source: netip.MustParseAddr("198.18.10.1"),
		Interval: 2 * time.Second, Timeout: time.Second, Window: 10, LossPercent: 50, DownAfter: 3, UpAfter: 2}) {
		t.Errorf("target: %+v", ts[0])
	}

	chans := notifyChannels(cfg.Notifications.Channels)
	if len(chans) != 2 || chans[0].Frequency != notify.Immediate || chans[1].Frequency != notify.Daily {
		t.Fatalf("channels: %+v", chans)
	}
	wh, ok := chans[0].Sender.(*notify.Webhook)
	if !ok || wh.URL != "https://hooks.example.com/xwan" || wh.Header.Get("Authorization") != "Bearer example-token" {
		t.Errorf("webhook: %+v", chans[0].Sender)
	}
	em, ok := chans[1].Sender.(*notify.Email)
	if !ok || em.Server != "smtp.example.com:587" || em.Auth == nil || !em.RequireTLS || em.To[0] != "noc@example.com" {
		t.Errorf("email: %+v", chans[1].Sender)
	}
	for kind, want := range map[events.Type]bool{events.BGPSessionDown: true, events.LANMonitorDown: true, events.BGPSessionUp: false, events.LANMonitorUp: false} {
		if got := chans[0].Match(notify.Message{Kind: string(kind)}); got != want {
			t.Errorf("noc-webhook matches %s: %v, want %v", kind, got, want)
		}
	}
	if !chans[1].Match(notify.Message{Kind: string(events.BGPRoutesAdded)}) {
		t.Error("events: [all] does not take route batches")
	}
	n, err := notify.New(chans, notify.Options{})
	if err != nil {
		t.Fatalf("notify.New: %v", err)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Error(err)
	}
}
