package interconnect

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/api"
	"github.com/xwan-dev/xwan/userspace/events"
)

// routesOf returns xwanctl's routes for a prefix.
func routesOf(rs []api.Route, prefix string) []api.Route {
	var out []api.Route
	for _, r := range rs {
		if r.Prefix == prefix {
			out = append(out, r)
		}
	}
	return out
}

func activeOf(rs []api.Route, prefix string) (api.Route, bool) {
	for _, r := range routesOf(rs, prefix) {
		if r.Active {
			return r, true
		}
	}
	return api.Route{}, false
}

// Both sessions come up; the VNets are in the gateway's kernel and in the
// LAN program's destination map via the primary, and xwanctl says so; BIRD
// prefers the gateway's routes via the primary; a LAN host reaches a VNet
// VM through the LAN program; `birdc disable msee1` moves everything to
// the secondary, `enable` back.
func TestSessionsRoutesAndFailover(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startXwand()
	t.Logf("both sessions established %s after xwand answered", l.waitEstablished("msee1", "msee2").Round(time.Millisecond))

	waitFor(t, 10*time.Second, "VNets via the primary in the gateway's kernel", func() (bool, string) { return l.vnetsVia(msee1) })

	// xwanctl routes: connected, static and dynamic, the primary's active
	// and the secondary's (once its update is in) standing by.
	var rs []api.Route
	waitFor(t, 10*time.Second, "xwanctl routes with both neighbours' VNet routes", func() (bool, string) {
		l.xwanctlJSON(&rs, "routes")
		for _, p := range vnets {
			if len(routesOf(rs, p)) != 2 {
				return false, fmt.Sprintf("%+v", rs)
			}
		}
		return true, ""
	})
	for _, p := range vnets {
		a, ok := activeOf(rs, p)
		if !ok || a.Type != api.RouteDynamic || a.NextHop != msee1 || a.Peer != "msee1" || a.Interface != "er1" ||
			a.Metric != 90 || a.LocalPref != 910 || a.Datapath != "local" {
			t.Errorf("active route for %s = %+v, want dynamic via %s (msee1, er1, metric 90, datapath local)", p, a, msee1)
		}
		for _, r := range routesOf(rs, p) {
			if !r.Active && (r.Peer != "msee2" || r.NextHop != msee2 || r.Metric != 100 || r.LocalPref != 900 || r.Datapath != "") {
				t.Errorf("inactive route for %s = %+v, want the secondary's", p, r)
			}
		}
	}
	if a, ok := activeOf(rs, lanPrefix); !ok || a.Type != api.RouteConnected || a.Interface != "lan0" || a.Datapath != "local" {
		t.Errorf("connected route = %+v", a)
	}
	if a, ok := activeOf(rs, meshPrefix); !ok || a.Type != api.RouteStatic || a.Peer != "site-b" || a.Interface != "xwan0" || a.Datapath != "mesh" {
		t.Errorf("static route = %+v", a)
	}
	text, _ := l.xwanctl("routes")
	t.Logf("xwanctl routes:\n%s", text)
	if !regexp.MustCompile(`(?m)^\*\s+dynamic\s+198\.18\.200\.0/24\s+169\.254\.10\.6\s+er1\s+90\s+msee1\s+local`).MatchString(text) {
		t.Errorf("xwanctl routes does not show 198.18.200.0/24 active via msee1")
	}

	// The LAN program's destination map, read from its pin.
	ds := l.dests()
	for _, p := range vnets {
		if d, ok := ds[p]; !ok || d.SiteID != 1 || d.Kind != 1 {
			t.Errorf("dest_prefixes[%s] = %+v (present %v), want site 1, kind local", p, d, ok)
		}
	}

	// BIRD prefers the gateway's routes via the primary: MED 90 and a
	// plain AS path against MED 100 and two prepends. The mesh's prefix is
	// advertised too (advertise_mesh).
	for _, p := range []string{lanPrefix, meshPrefix} {
		waitFor(t, 10*time.Second, "BIRD's best route for "+p+" via msee1", func() (bool, string) {
			best, out := l.birdBest(p)
			return best == "msee1" && strings.Contains(out, "msee2"), out
		})
	}
	_, out := l.birdBest(lanPrefix)
	for _, want := range []string{"BGP.med: 90", "BGP.as_path: 65010\n", "BGP.med: 100", "BGP.as_path: 65010 65010 65010"} {
		if !strings.Contains(out, want) {
			t.Errorf("birdc show route %s all: no %q in\n%s", lanPrefix, want, out)
		}
	}

	// xwanctl bgp, once both have sent and been sent everything.
	var ns []api.BGPNeighbor
	waitFor(t, 10*time.Second, "xwanctl bgp with the final counts", func() (bool, string) {
		l.xwanctlJSON(&ns, "bgp")
		for _, n := range ns {
			if n.Received != 2 || n.Advertised != 2 {
				return false, fmt.Sprintf("%+v", ns)
			}
		}
		return len(ns) == 2, fmt.Sprintf("%+v", ns)
	})
	for _, n := range ns {
		active := map[string]int{"msee1": 2, "msee2": 0}[n.Name]
		if n.State != "established" || n.AdminState != "up" || n.HoldTimeSec != 9 || n.KeepaliveSec != 3 || n.Received != 2 ||
			n.Accepted != 2 || n.Advertised != 2 || n.Active != active || n.PeerASN != 12076 || n.Since.IsZero() {
			t.Errorf("xwanctl bgp: %+v", n)
		}
	}
	text, _ = l.xwanctl("bgp")
	t.Logf("xwanctl bgp:\n%s", text)

	// The libraries' metrics are on the gateway's registry, next to its own.
	metrics, err := l.client().Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`xwan_bgp_peer_up{neighbor="msee1"} 1`,
		`xwan_bgp_peer_state{neighbor="msee2",peer="169.254.10.2"} 6`,
		`xwan_bgp_routes_installed{neighbor="msee1"} 2`,
		`xwan_bgp_session_transitions_total{neighbor="msee1",to="up"} 1`,
		`xwan_lan_monitor_up{address="198.18.200.1",target="vnet-vm"}`,
		`xwan_notify_deliveries_total{channel="test-hook",result="failed"} 0`,
		`xwan_path_up{link="wan1",path="1",site="site-b"} 0`,
		`xwan_events_total{type="bgp_session_up"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: no %q", want)
		}
	}

	// Events on the bus.
	if n := len(l.events(events.BGPSessionUp)); n != 2 {
		t.Errorf("%d bgp_session_up events, want 2", n)
	}
	if evs := l.events(events.BGPRoutesAdded); len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Detail["routes"], "via 169.254.10.6 (msee1)") {
		t.Errorf("bgp_routes_added events: %+v", evs)
	}

	// A LAN host reaches the VNet VM through the gateway: the LAN program
	// finds the VNet in its destination map (reason local) and passes the
	// packets to the kernel, which routes them to the primary.
	before := lanReason(t, l, "local")
	l.host.MustRun(t, "ping", "-c", "3", "-i", "0.2", "-W", "2", vnetVM)
	if after := lanReason(t, l, "local"); after < before+3 {
		t.Errorf("LAN program 'local' verdicts %d -> %d, want the 3 echo requests", before, after)
	}

	// Failover: the primary's router shuts its session down.
	if out, err := l.birdc("disable msee1"); err != nil {
		t.Fatal(err, out)
	}
	start := time.Now()
	waitFor(t, 30*time.Second, "VNets via the secondary", func() (bool, string) { return l.vnetsVia(msee2) })
	t.Logf("failover: VNet routes via the secondary in the gateway's kernel %s after `birdc disable msee1`", time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "BIRD's best route via msee2", func() (bool, string) {
		best, out := l.birdBest(lanPrefix)
		return best == "msee2", out
	})
	l.xwanctlJSON(&rs, "routes")
	for _, p := range vnets {
		if a, ok := activeOf(rs, p); !ok || a.NextHop != msee2 || a.Peer != "msee2" || a.Interface != "er2" || a.Datapath != "local" {
			t.Errorf("after failover, active route for %s = %+v", p, a)
		}
	}
	if ds := l.dests(); ds[vnets[0]].Kind != 1 || ds[vnets[1]].Kind != 1 {
		t.Errorf("destination map lost the VNets on failover: %+v", ds)
	}
	downs := l.eventsAbout(events.BGPSessionDown, "msee1")
	if len(downs) != 1 || !strings.Contains(downs[0].Reason, "cease") || downs[0].Remote != msee1 {
		t.Errorf("bgp_session_down events = %+v, want one for msee1 with BIRD's Cease", downs)
	}
	waitFor(t, 10*time.Second, "a webhook notification of the session going down", func() (bool, string) {
		return slices.Contains(l.hook.kinds(), string(events.BGPSessionDown)), fmt.Sprint(l.hook.kinds())
	})
	for _, d := range l.hook.deliveries() {
		if d.header.Get("X-Test") != "interconnect" || d.Channel != "test-hook" {
			t.Errorf("delivery without the configured header or channel: %+v", d)
		}
	}
	l.host.MustRun(t, "ping", "-c", "1", "-W", "2", vnetVM)

	// Failback.
	if out, err := l.birdc("enable msee1"); err != nil {
		t.Fatal(err, out)
	}
	start = time.Now()
	waitFor(t, 30*time.Second, "VNets back via the primary", func() (bool, string) { return l.vnetsVia(msee1) })
	t.Logf("failback: VNet routes via the primary %s after `birdc enable msee1`", time.Since(start).Round(time.Millisecond))
}

// lanReason is the LAN program's packet count for a verdict reason.
func lanReason(t *testing.T, l *lab, reason string) uint64 {
	t.Helper()
	st, err := l.client().Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Reasons[reason].Packets
}

// test-connectivity runs in xwand's namespace: Success to the VNet VM
// (also from the LAN address), Failed to a blackholed VNet address, Error
// without a route or from an address the gateway does not have. A LAN
// monitoring target that goes down is a lan_monitor_down event and a
// webhook notification; coming back, lan_monitor_up.
func TestConnectivityAndLANMonitor(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startXwand()
	l.waitEstablished("msee1")
	waitFor(t, 10*time.Second, "VNets via the primary", func() (bool, string) { return l.vnetsVia(msee1) })

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--to", vnetVM}, 0, "Success: 198.18.200.1 answered in "},
		{[]string{"--to", vnetVM, "--from", gwLAN}, 0, "Success: 198.18.200.1 answered from 198.18.10.1 in "},
		{[]string{"--to", vnetSilent}, 1, "Failed: 198.18.201.9: no reply within "},
		{[]string{"--to", unroutable}, 2, "Error: 192.0.2.1: no route to 192.0.2.1"},
		{[]string{"--to", vnetVM, "--from", "198.18.99.99"}, 2, "Error: 198.18.200.1 from 198.18.99.99: source address 198.18.99.99 is not on this host"},
	} {
		out, code := l.xwanctl(append([]string{"test-connectivity"}, tc.args...)...)
		t.Logf("xwanctl test-connectivity %s: exit %d: %s", strings.Join(tc.args, " "), code, strings.TrimSpace(out))
		if code != tc.code || !strings.HasPrefix(out, tc.want) {
			t.Errorf("xwanctl test-connectivity %v: exit %d %q, want exit %d and %q...", tc.args, code, out, tc.code, tc.want)
		}
	}
	var res api.ConnectivityResult
	if out, code := l.xwanctl("--json", "test-connectivity", "--to", vnetVM); code != 0 || json.Unmarshal([]byte(out), &res) != nil ||
		res.Outcome != api.ConnectivitySuccess || res.RTTSec <= 0 || res.RTTSec > 1 {
		t.Errorf("xwanctl --json test-connectivity: exit %d: %s", code, out)
	}

	// LAN monitoring: the VNet VM is up (xwand starts probing before BGP
	// has the route, so with a 200ms interval it may first be reported
	// down, then up), then its address goes away.
	waitFor(t, 10*time.Second, "vnet-vm up", func() (bool, string) {
		ms, err := l.client().Monitors()
		return err == nil && len(ms) == 1 && ms[0].State == "up", fmt.Sprintf("%+v %v", ms, err)
	})
	before := len(l.hook.deliveries())
	downsBefore := len(l.events(events.LANMonitorDown))
	l.az.MustRun(t, "ip", "addr", "del", vnetVM+"/32", "dev", "lo")
	start := time.Now()
	waitFor(t, 10*time.Second, "lan_monitor_down", func() (bool, string) {
		evs := l.events(events.LANMonitorDown)
		return len(evs) == downsBefore+1, fmt.Sprintf("%+v", evs)
	})
	t.Logf("lan_monitor_down %s after the VM's address went (interval 200ms, down after 3 failures)", time.Since(start).Round(time.Millisecond))
	down := l.events(events.LANMonitorDown)[downsBefore]
	if down.Remote != vnetVM || down.Detail["target"] != "vnet-vm" || down.Detail["previous"] != "up" || down.Reason != "3 consecutive probes failed" {
		t.Errorf("lan_monitor_down event: %+v", down)
	}
	waitFor(t, 10*time.Second, "a webhook notification of vnet-vm going down", func() (bool, string) {
		return len(l.hook.deliveries()) > before, fmt.Sprint(l.hook.kinds())
	})
	d := l.hook.deliveries()[before]
	if d.Key != "lan-monitor/vnet-vm" || d.Digest || len(d.Messages) != 1 || d.Messages[0].Kind != "lan_monitor_down" ||
		!strings.Contains(d.Subject, "vnet-vm (198.18.200.1) is down") {
		t.Errorf("webhook delivery: %+v", d)
	}
	out, _ := l.xwanctl("monitors")
	t.Logf("xwanctl monitors:\n%s", out)
	var ms []api.Monitor
	l.xwanctlJSON(&ms, "monitors")
	if len(ms) != 1 || ms[0].Name != "vnet-vm" || ms[0].State != "down" || ms[0].LastOutcome == "success" || ms[0].IntervalSec != 0.2 {
		t.Errorf("xwanctl monitors: %+v", ms)
	}

	l.az.MustRun(t, "ip", "addr", "add", vnetVM+"/32", "dev", "lo")
	waitFor(t, 10*time.Second, "lan_monitor_up notification", func() (bool, string) {
		k := l.hook.kinds()
		return len(k) == before+2 && k[before+1] == "lan_monitor_up", fmt.Sprint(k)
	})
	// Every state change was notified except a first verdict of up (from
	// unknown), which is no change.
	var changes []string
	for _, e := range allEvents(t, l) {
		if (e.Type == events.LANMonitorUp || e.Type == events.LANMonitorDown) && !(e.Type == events.LANMonitorUp && e.Detail["previous"] == "unknown") {
			changes = append(changes, string(e.Type))
		}
	}
	if k := l.hook.kinds(); !slices.Equal(k, changes) {
		t.Errorf("notified %v, want the changes %v", k, changes)
	}
	metrics, err := l.client().Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`xwan_lan_monitor_up{address="198.18.200.1",target="vnet-vm"} 1`,
		fmt.Sprintf(`xwan_notify_deliveries_total{channel="test-hook",result="ok"} %d`, len(changes)),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: no %q", want)
		}
	}
}

// With the wrong MD5 password on msee1, that session never comes up and
// xwanctl bgp says why as far as anyone can tell (the peer's kernel drops
// the segments silently); msee2 carries the routes.
func TestWrongPassword(t *testing.T) {
	l := newLab(t, labOptions{Password1: "not-the-secret"})
	l.startXwand()
	l.waitEstablished("msee2")
	waitFor(t, 30*time.Second, "msee1 failing with a reason", func() (bool, string) {
		n := l.neighbors()["msee1"]
		return n.State != "established" && strings.Contains(n.LastError, "TCP MD5 password mismatch"), fmt.Sprintf("%+v", n)
	})
	out, _ := l.xwanctl("bgp")
	t.Logf("xwanctl bgp:\n%s", out)
	if !regexp.MustCompile(`(?m)^msee1 .*(active|connect|idle).*connect: no answer from the peer \(TCP MD5 password mismatch`).MatchString(out) {
		t.Errorf("xwanctl bgp does not show msee1's reason")
	}
	// It stays down through a few connect retries (1s).
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if n := l.neighbors()["msee1"]; n.State == "established" || n.State == "openconfirm" {
			t.Fatalf("msee1 came up with the wrong password: %+v", n)
		}
	}
	if out, _ := l.birdc("show protocols msee1"); strings.Contains(out, "Established") {
		t.Errorf("BIRD established msee1:\n%s", out)
	}
	if ok, detail := l.vnetsVia(msee2); !ok {
		t.Errorf("VNets not via the secondary: %s", detail)
	}
	if n := len(l.eventsAbout(events.BGPSessionUp, "msee1")); n != 0 {
		t.Errorf("%d bgp_session_up events for msee1", n)
	}
}

// BIRD sends 5 prefixes, msee1 accepts at most 4: the session is torn
// down (Cease), BGPPrefixLimit is published and notified, the secondary
// carries the routes, and after the configured 3 s msee1 is re-enabled,
// comes back and trips the limit again.
func TestPrefixLimit(t *testing.T) {
	l := newLab(t, labOptions{
		BIRDRoutes: append(slices.Clone(vnets), "198.18.202.0/24", "198.18.203.0/24", "198.18.204.0/24"),
		Neighbor1:  []string{"max_received: 4", "prefix_limit_restart: 3s"},
	})
	l.startXwand()
	waitFor(t, 30*time.Second, "bgp_prefix_limit for msee1", func() (bool, string) {
		evs := l.eventsAbout(events.BGPPrefixLimit, "msee1")
		return len(evs) >= 1, fmt.Sprintf("%+v", l.neighbors()["msee1"])
	})
	first := l.eventsAbout(events.BGPPrefixLimit, "msee1")[0]
	restartAt, err := time.Parse(time.RFC3339, first.Detail["restart_at"])
	if err != nil || first.Detail["limit"] != "4" || restartAt.Sub(first.Time) < 2*time.Second || restartAt.Sub(first.Time) > 4*time.Second {
		t.Errorf("bgp_prefix_limit event = %+v, want limit 4 and a restart 3s later", first)
	}
	downs := l.eventsAbout(events.BGPSessionDown, "msee1")
	if len(downs) == 0 || !strings.Contains(downs[0].Reason, "maximum number of prefixes reached") || downs[0].Detail["prefix_limit"] != "true" {
		t.Errorf("bgp_session_down events = %+v", downs)
	}
	if out, _ := l.birdc("show protocols all msee1"); !strings.Contains(out, "Maximum number of prefixes reached") {
		t.Errorf("BIRD does not report the Cease:\n%s", out)
	}
	waitFor(t, 10*time.Second, "the five prefixes via the secondary", func() (bool, string) {
		rs := l.kernelRoutes()
		return len(rs) == 5 && rs["198.18.204.0/24"] == msee2 && rs[vnets[0]] == msee2, fmt.Sprint(rs)
	})
	waitFor(t, 10*time.Second, "a webhook notification of the prefix limit", func() (bool, string) {
		return slices.Contains(l.hook.kinds(), string(events.BGPPrefixLimit)), fmt.Sprint(l.hook.kinds())
	})

	// The restart policy: re-enabled 3s later, up again, over the limit again.
	waitFor(t, 30*time.Second, "restart, re-establishment and a second limit", func() (bool, string) {
		restarts := l.eventsAbout(BGPNeighborRestarted, "msee1")
		ups := l.eventsAbout(events.BGPSessionUp, "msee1")
		limits := l.eventsAbout(events.BGPPrefixLimit, "msee1")
		return len(restarts) >= 1 && len(ups) >= 2 && len(limits) >= 2, fmt.Sprintf("restarts %d, ups %d, limits %d", len(restarts), len(ups), len(limits))
	})
	restart := l.eventsAbout(BGPNeighborRestarted, "msee1")[0]
	if d := restart.Time.Sub(first.Time); d < 3*time.Second || d > 5*time.Second {
		t.Errorf("re-enabled %s after the limit, configured 3s", d)
	} else {
		t.Logf("msee1 re-enabled %s after the prefix limit (prefix_limit_restart: 3s)", d.Round(time.Millisecond))
	}
	if restart.Detail["by"] != "restart policy" {
		t.Errorf("restart event: %+v", restart)
	}
	out, _ := l.xwanctl("bgp")
	t.Logf("xwanctl bgp:\n%s", out)
	metrics, err := l.client().Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`xwan_bgp_prefix_limit_exceeded_total\{neighbor="msee1"\} [2-9]`).MatchString(metrics) ||
		!strings.Contains(metrics, `xwan_bgp_prefix_limit_exceeded_total{neighbor="msee2"} 0`) {
		t.Errorf("prefix-limit counters wrong:\n%s", grep(metrics, "prefix_limit"))
	}
}

// BGPNeighborRestarted is the gateway's event for a neighbour re-enabled
// after a prefix limit.
const BGPNeighborRestarted = events.Type("bgp_neighbor_restarted")

// advertise_default only: BIRD receives exactly 0.0.0.0/0 from each
// neighbour. accept_dynamic off: the VNets are received and listed as
// rejected, and nothing reaches the kernel or the destination map. Then
// `xwanctl bgp disable` and `enable` take a session down and back.
func TestDefaultOnlyNoDynamic(t *testing.T) {
	opts := []string{"advertise_default: true", "advertise_all: false", "accept_dynamic: false"}
	l := newLab(t, labOptions{Neighbor1: opts, Neighbor2: opts})
	l.startXwand()
	waitFor(t, 30*time.Second, "sessions up and the VNets received", func() (bool, string) {
		ns := l.neighbors()
		return ns["msee1"].State == "established" && ns["msee2"].State == "established" &&
			ns["msee1"].Received == 2 && ns["msee2"].Received == 2, fmt.Sprintf("%+v", ns)
	})
	waitFor(t, 10*time.Second, "BIRD has exactly 0.0.0.0/0 from each neighbour", func() (bool, string) {
		r1, r2 := l.birdReceived("msee1"), l.birdReceived("msee2")
		return slices.Equal(r1, []string{"0.0.0.0/0"}) && slices.Equal(r2, []string{"0.0.0.0/0"}), fmt.Sprint(r1, r2)
	})
	for _, n := range l.neighbors() {
		if n.Accepted != 0 || n.Active != 0 || n.Advertised != 1 {
			t.Errorf("%s: %+v, want 0 accepted, 0 active, 1 advertised", n.Name, n)
		}
	}
	if rs := l.kernelRoutes(); len(rs) != 0 {
		t.Errorf("kernel routes with accept_dynamic off: %v", rs)
	}
	ds := l.dests()
	for _, p := range vnets {
		if d, ok := ds[p]; ok {
			t.Errorf("destination map has %s: %+v", p, d)
		}
	}
	var rs []api.Route
	l.xwanctlJSON(&rs, "routes")
	rejected := 0
	for _, r := range rs {
		if r.Type == api.RouteDynamic {
			if r.Active || !r.Rejected {
				t.Errorf("dynamic route %+v: want rejected and inactive", r)
			}
			rejected++
		}
	}
	if rejected != 4 {
		t.Errorf("%d rejected dynamic routes, want 4 (2 VNets from 2 neighbours): %+v", rejected, rs)
	}
	out, _ := l.xwanctl("routes")
	t.Logf("xwanctl routes:\n%s", out)

	// An operator shuts msee1 down and brings it back.
	if out, code := l.xwanctl("bgp", "disable", "msee1"); code != 0 || out != "neighbor msee1 disabled\n" {
		t.Fatalf("xwanctl bgp disable msee1: exit %d: %s", code, out)
	}
	waitFor(t, 10*time.Second, "msee1 administratively down on both sides", func() (bool, string) {
		n := l.neighbors()["msee1"]
		bird, _ := l.birdc("show protocols all msee1")
		return n.State != "established" && n.AdminState == "down" && !strings.Contains(bird, "Established") &&
			strings.Contains(bird, "Administrative shutdown"), fmt.Sprintf("%+v\n%s", n, bird)
	})
	if out, code := l.xwanctl("bgp", "enable", "msee1"); code != 0 {
		t.Fatalf("xwanctl bgp enable msee1: exit %d: %s", code, out)
	}
	if out, code := l.xwanctl("bgp", "enable", "nobody"); code == 0 || !strings.Contains(out, `no BGP neighbor "nobody"`) {
		t.Errorf("xwanctl bgp enable nobody: exit %d: %s", code, out)
	}
	l.waitEstablished("msee1")
}

// kill -9: the learned routes stay in the kernel and the pinned
// destination map; the restarted xwand sweeps them (and stale ones it will
// not learn again), adopts its BPF, and learns the routes again. A clean
// stop removes them.
func TestCrashRestart(t *testing.T) {
	l := newLab(t, labOptions{})
	l.startXwand()
	waitFor(t, 30*time.Second, "VNets via the primary", func() (bool, string) { return l.vnetsVia(msee1) })

	l.stopXwand(syscall.SIGKILL)
	if ok, detail := l.vnetsVia(msee1); !ok {
		t.Fatalf("routes gone after SIGKILL (they are left behind): %s", detail)
	}
	ds := l.dests()
	if ds[vnets[0]].Kind != 1 || ds[vnets[1]].Kind != 1 {
		t.Fatalf("destination map lost the VNets after SIGKILL: %+v", ds)
	}
	// Stale leftovers a new run will not learn again, and someone else's
	// route that must survive.
	stale := "198.18.250.0/24"
	l.gw.MustRun(t, "ip", "route", "add", stale, "via", msee2, "proto", fmt.Sprint(routeProto), "metric", fmt.Sprint(kernelPrio))
	l.putDest(netip.MustParsePrefix(stale), destInfo{SiteID: 1, Kind: 1})
	l.gw.MustRun(t, "ip", "route", "add", "198.18.251.0/24", "via", msee2, "proto", "static")

	l.startXwand()
	waitFor(t, 30*time.Second, "VNets re-learned via the primary, the stale route swept", func() (bool, string) {
		rs := l.kernelRoutes()
		_, gone := rs[stale]
		return !gone && rs[vnets[0]] == msee1 && rs[vnets[1]] == msee1, fmt.Sprint(rs)
	})
	if log := readFile(t, l.xwandLog); !strings.Contains(log, "removed stale routes left by an earlier run") || !strings.Contains(log, "count=3") {
		t.Errorf("xwand did not report sweeping 3 stale routes:\n%s", grep(log, "stale"))
	}
	ds = l.dests()
	if _, ok := ds[stale]; ok {
		t.Errorf("stale destination %s survived the restart", stale)
	}
	for _, p := range vnets {
		if ds[p].Kind != 1 {
			t.Errorf("destination map after restart: %s = %+v", p, ds[p])
		}
	}
	if out := l.gw.MustRun(t, "ip", "route", "show", "198.18.251.0/24"); !strings.Contains(out, "proto static") {
		t.Errorf("the sweep removed a route it does not own: %q", out)
	}
	st, err := l.client().Status()
	if err != nil || !st.AdoptedBPF {
		t.Errorf("restarted xwand did not adopt its pinned BPF: %+v %v", st, err)
	}
	var rs []api.Route
	l.xwanctlJSON(&rs, "routes")
	if a, ok := activeOf(rs, vnets[0]); !ok || a.NextHop != msee1 || a.Datapath != "local" {
		t.Errorf("xwanctl routes after restart: %+v", a)
	}

	// A clean stop takes the learned routes out of the kernel and the map.
	l.stopXwand(syscall.SIGTERM)
	if rs := l.kernelRoutes(); len(rs) != 0 {
		t.Errorf("routes left after a clean stop: %v", rs)
	}
	ds = l.dests()
	for _, p := range vnets {
		if _, ok := ds[p]; ok {
			t.Errorf("destination %s left after a clean stop", p)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// grep returns the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func allEvents(t *testing.T, l *lab) []events.Event {
	t.Helper()
	evs, err := l.client().Events()
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
