package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

// Interop with BIRD 2 playing Azure's MSEE routers (AS 12076), in network
// namespaces made by each test:
//
//	gateway ns                               az ns (BIRD)
//	er1 169.254.10.5/30  <---- veth ---->  msee1 169.254.10.6/30   (primary circuit)
//	er2 169.254.10.1/30  <---- veth ---->  msee2 169.254.10.2/30   (secondary circuit)
//
// As with ExpressRoute, the first usable address of each /30 is the
// customer's, the second Microsoft's. BIRD announces the "VNet" prefixes;
// xwan announces the site prefix 198.18.10.0/24.
//
// The primary sits on the higher subnet on purpose: when everything else
// is equal, both BIRD and gobgp prefer the lower neighbour address, so
// with this layout the tie-breaks favour the secondary and only the metric
// policy (LOCAL_PREF, MED, prepending) can make the primary win.

var vnets = []string{"198.18.200.0/24", "198.18.201.0/24"}

const sitePrefix = "198.18.10.0/24"

const birdTemplate = `
log "{{.Dir}}/bird.log" all;
router id 169.254.10.6;
protocol device { }
protocol static vnet {
	ipv4;
{{- range .Routes}}
	route {{.}} blackhole;
{{- end}}
}
template bgp msee {
	local as 12076;
	hold time 9; keepalive time 3;
	connect delay time 1; connect retry time 1; error wait time 1, 2;
	ipv4 { import all; export where source = RTS_STATIC; };
}
protocol bgp msee1 from msee {
	local 169.254.10.6; neighbor 169.254.10.5 as 65010;
	password "{{.Password1}}";
}
protocol bgp msee2 from msee {
	local 169.254.10.2; neighbor 169.254.10.1 as 65010;
	password "secret";
}
`

type birdConf struct {
	Dir       string
	Routes    []string
	Password1 string // msee1's password: "secret" unless a test wants a mismatch
}

type lab struct {
	gw, az *testenv.Netns
	sock   string // birdc control socket
}

// newLab builds the namespaces and starts BIRD.
func newLab(t *testing.T, bc birdConf) *lab {
	t.Helper()
	testenv.RequireRoot(t)
	for _, bin := range []string{"bird", "birdc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, "%s not installed (apt-get install bird2 iproute2)", bin)
		}
	}
	l := &lab{gw: testenv.NewNetns(t, "xbgw"), az: testenv.NewNetns(t, "xbaz")}
	testenv.Link(t, l.gw, "er1", "169.254.10.5/30", l.az, "msee1", "169.254.10.6/30")
	testenv.Link(t, l.gw, "er2", "169.254.10.1/30", l.az, "msee2", "169.254.10.2/30")

	dir := t.TempDir()
	bc.Dir = dir
	if bc.Routes == nil {
		bc.Routes = vnets
	}
	if bc.Password1 == "" {
		bc.Password1 = "secret"
	}
	var b strings.Builder
	if err := template.Must(template.New("bird").Parse(birdTemplate)).Execute(&b, bc); err != nil {
		t.Fatal(err)
	}
	conf := dir + "/bird.conf"
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	l.sock = dir + "/bird.ctl"
	cmd := l.az.Command(context.Background(), "bird", "-f", "-c", conf, "-s", l.sock, "-P", dir+"/bird.pid")
	cmd.Stderr = &testWriter{t: t, prefix: "bird: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			if log, err := os.ReadFile(dir + "/bird.log"); err == nil {
				t.Logf("bird.log:\n%s", log)
			}
		}
	})
	waitFor(t, 15*time.Second, "BIRD control socket", func() (bool, string) {
		out, err := l.birdc("show status")
		return err == nil && strings.Contains(out, "Daemon is up and running"), out
	})
	return l
}

func (l *lab) birdc(cmd string) (string, error) {
	return l.az.Run(append([]string{"birdc", "-s", l.sock}, strings.Fields(cmd)...)...)
}

// gatewayConfig is xwan's side of the lab, as in docs/bgp.md: msee1
// primary (metric 90), msee2 secondary (metric 100), MD5, short timers so
// the suite stays fast.
func gatewayConfig() helperConfig {
	nb := func(name, peer, local string, metric int) Neighbor {
		return Neighbor{
			Name: name, PeerAddress: netip.MustParseAddr(peer), PeerASN: 12076,
			LocalAddress: netip.MustParseAddr(local), Password: "secret",
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, ConnectRetry: time.Second,
			Metric: metric, AdvertiseAll: true, AcceptDynamic: true,
		}
	}
	return helperConfig{
		BGP: Config{
			ASN:    65010,
			Kernel: KernelConfig{Install: true},
			Neighbors: []Neighbor{
				nb("msee1", "169.254.10.6", "169.254.10.5", 90),
				nb("msee2", "169.254.10.2", "169.254.10.1", 100),
			},
		},
		Networks: []netip.Prefix{netip.MustParsePrefix(sitePrefix)},
	}
}

// kernelRoutes lists xwan's routes in the gateway namespace: prefix -> gateway.
func (l *lab) kernelRoutes(t *testing.T) map[string]string {
	t.Helper()
	out := l.gw.MustRun(t, "ip", "-j", "-4", "route", "show", "proto", fmt.Sprint(int(RouteProtocol)))
	var rs []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
		Metric   int    `json:"metric"`
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("ip -j route: %v: %s", err, out)
	}
	m := map[string]string{}
	for _, r := range rs {
		if r.Metric != DefaultKernelPriority {
			t.Errorf("kernel route %s has metric %d, want %d", r.Dst, r.Metric, DefaultKernelPriority)
		}
		m[r.Dst] = r.Gateway
	}
	return m
}

// vnetsVia reports whether every VNet prefix is in the gateway's kernel
// with next hop gw.
func (l *lab) vnetsVia(t *testing.T, gw string) (bool, string) {
	rs := l.kernelRoutes(t)
	for _, p := range vnets {
		if rs[p] != gw {
			return false, fmt.Sprint(rs)
		}
	}
	return true, ""
}

var birdRouteLine = regexp.MustCompile(`unicast \[(\w+) [^\]]*\]( \*)?`)

// birdBest returns the protocol of BIRD's best route for prefix and all
// the protocols it has a route from.
func (l *lab) birdBest(t *testing.T, prefix string) (best string, all []string, out string) {
	t.Helper()
	out, err := l.birdc("show route " + prefix + " all")
	if err != nil {
		return "", nil, out
	}
	for _, m := range birdRouteLine.FindAllStringSubmatch(out, -1) {
		all = append(all, m[1])
		if m[2] != "" {
			best = m[1]
		}
	}
	return best, all, out
}

func TestBIRDPrimarySecondaryFailover(t *testing.T) {
	l := newLab(t, birdConf{})
	h := startHelper(t, l.gw, gatewayConfig())

	start := time.Now()
	waitFor(t, 30*time.Second, "both sessions established", func() (bool, string) {
		st := h.status(t)
		return st["msee1"].State == "established" && st["msee2"].State == "established", fmt.Sprintf("%+v", st)
	})
	t.Logf("both sessions established after %s", time.Since(start).Round(time.Millisecond))

	// Outbound: the VNets are in the gateway's kernel via the primary,
	// with xwan's protocol number.
	waitFor(t, 10*time.Second, "VNet routes via the primary in the kernel", func() (bool, string) {
		return l.vnetsVia(t, "169.254.10.6")
	})

	// Inbound: BIRD prefers xwan's route via the primary (MED 90, AS path
	// 65010) over the secondary's (MED 100, AS path 65010 65010 65010).
	waitFor(t, 10*time.Second, "BIRD's best route via msee1", func() (bool, string) {
		best, all, out := l.birdBest(t, sitePrefix)
		return best == "msee1" && slices.Contains(all, "msee2"), out
	})
	_, _, out := l.birdBest(t, sitePrefix)
	for _, want := range []string{"BGP.med: 90", "BGP.as_path: 65010\n", "BGP.med: 100", "BGP.as_path: 65010 65010 65010"} {
		if !strings.Contains(out, want) {
			t.Errorf("birdc show route %s all: missing %q in\n%s", sitePrefix, want, out)
		}
	}

	// Status, routes and metrics as xwanctl will show them.
	st := h.status(t)["msee1"]
	if st.PrefixesReceived != 2 || st.PrefixesAccepted != 2 || st.PrefixesAdvertised != 1 || st.RoutesActive != 2 ||
		st.HoldTime != 9*time.Second || st.Keepalive != 3*time.Second || st.LocalPref != 910 {
		t.Errorf("msee1 status = %+v", st)
	}
	var routes []Route
	h.get(t, "/routes", &routes)
	// Both paths are known, the primary's wins on LOCAL_PREF (1000 -
	// metric). This, not the kernel's next hop alone, shows the policy at
	// work: gobgp breaks a tie by path age, and msee1 often comes up first.
	var learned []string
	for _, r := range routes {
		if !r.Local {
			learned = append(learned, fmt.Sprintf("%s via %s (%s, lp %d, best %v)", r.Prefix, r.NextHop, r.Neighbor, r.LocalPref, r.Best))
		}
	}
	want := []string{
		"198.18.200.0/24 via 169.254.10.6 (msee1, lp 910, best true)",
		"198.18.200.0/24 via 169.254.10.2 (msee2, lp 900, best false)",
		"198.18.201.0/24 via 169.254.10.6 (msee1, lp 910, best true)",
		"198.18.201.0/24 via 169.254.10.2 (msee2, lp 900, best false)",
	}
	if !slices.Equal(learned, want) {
		t.Errorf("learned routes =\n%s\nwant\n%s", strings.Join(learned, "\n"), strings.Join(want, "\n"))
	}
	var metrics string
	h.get(t, "/metrics", &metrics)
	for _, want := range []string{
		`xwan_bgp_peer_up{neighbor="msee1"} 1`,
		`xwan_bgp_peer_state{neighbor="msee2",peer="169.254.10.2"} 6`,
		`xwan_bgp_routes_installed{neighbor="msee1"} 2`,
		`xwan_bgp_session_transitions_total{neighbor="msee1",to="up"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: missing %q", want)
		}
	}

	// Failover: the primary circuit's router shuts its session down.
	if out, err := l.birdc("disable msee1"); err != nil {
		t.Fatal(err, out)
	}
	start = time.Now()
	waitFor(t, 30*time.Second, "VNet routes via the secondary", func() (bool, string) {
		return l.vnetsVia(t, "169.254.10.2")
	})
	t.Logf("failover to the secondary took %s after `birdc disable msee1`", time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "BIRD's best route via msee2", func() (bool, string) {
		best, _, out := l.birdBest(t, sitePrefix)
		return best == "msee2", out
	})
	downs := h.events(t, KindSessionDown)
	if len(downs) != 1 || !strings.Contains(downs[0].Summary, "msee1") || !strings.Contains(downs[0].Summary, "cease") {
		t.Errorf("session down events = %+v, want one for msee1 with the Cease BIRD sent", downs)
	}
	if len(h.events(t, KindRoutesChanged)) < 2 {
		t.Errorf("want route events for the initial install and the failover")
	}

	// Failback when the primary returns.
	if out, err := l.birdc("enable msee1"); err != nil {
		t.Fatal(err, out)
	}
	start = time.Now()
	waitFor(t, 30*time.Second, "VNet routes back via the primary", func() (bool, string) {
		return l.vnetsVia(t, "169.254.10.6")
	})
	t.Logf("failback to the primary took %s after `birdc enable msee1`", time.Since(start).Round(time.Millisecond))
}

func TestBIRDWrongPassword(t *testing.T) {
	l := newLab(t, birdConf{Password1: "not-the-secret"})
	h := startHelper(t, l.gw, gatewayConfig())
	// msee2 has the right password: it proves the lab works, so msee1's
	// failure is the password's.
	waitFor(t, 30*time.Second, "msee2 up, msee1 failing with a reason", func() (bool, string) {
		st := h.status(t)
		ok := st["msee2"].State == "established" && st["msee1"].State != "established" &&
			strings.Contains(st["msee1"].LastError, "TCP MD5 password mismatch")
		return ok, fmt.Sprintf("%+v", st)
	})
	// And it stays down: watched through a few connect-retry rounds.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if st := h.status(t)["msee1"]; st.State == "established" || st.State == "openconfirm" {
			t.Fatalf("session with a wrong MD5 password came up: %+v", st)
		}
	}
	if out, _ := l.birdc("show protocols msee1"); strings.Contains(out, "Established") {
		t.Errorf("BIRD established msee1 with a wrong password:\n%s", out)
	}
	if n := len(h.events(t, KindSessionUp)); n != 1 {
		t.Errorf("%d session-up events, want 1 (msee2)", n)
	}
	if rs := l.kernelRoutes(t); rs["198.18.200.0/24"] != "169.254.10.2" {
		t.Errorf("kernel routes %v, want the VNets via the secondary", rs)
	}
}

func TestBIRDPrefixLimit(t *testing.T) {
	routes := append(slices.Clone(vnets), "198.18.202.0/24", "198.18.203.0/24", "198.18.204.0/24")
	l := newLab(t, birdConf{Routes: routes})
	hc := gatewayConfig()
	hc.BGP.Neighbors[0].MaxReceived = 4 // BIRD sends 5
	hc.BGP.Neighbors[0].PrefixLimitRestart = RestartPolicy{After: 3 * time.Second}
	h := startHelper(t, l.gw, hc)

	waitFor(t, 30*time.Second, "msee1 torn down by the prefix limit", func() (bool, string) {
		evs := h.events(t, KindPrefixLimitExceeded)
		return len(evs) >= 1 && strings.Contains(evs[0].Summary, "msee1"), fmt.Sprintf("%+v", h.status(t)["msee1"])
	})
	first := h.events(t, KindPrefixLimitExceeded)[0]
	var pl PrefixLimitExceeded
	if err := json.Unmarshal(first.Event, &pl); err != nil {
		t.Fatal(err)
	}
	if pl.Limit != 4 || pl.Manual || pl.RestartAt.Sub(pl.Time) != 3*time.Second {
		t.Errorf("event = %+v, want limit 4 and a restart 3s later", pl)
	}
	downs := h.events(t, KindSessionDown)
	if len(downs) == 0 || !strings.Contains(downs[0].Summary, "maximum number of prefixes reached") {
		t.Errorf("session down events = %+v", downs)
	}
	// BIRD saw the Cease with the max-prefix subcode.
	if out, _ := l.birdc("show protocols all msee1"); !strings.Contains(out, "Maximum number of prefixes reached") {
		t.Errorf("BIRD does not report the Cease:\n%s", out)
	}
	// The secondary (no limit) carries the routes meanwhile.
	waitFor(t, 10*time.Second, "VNets via the secondary", func() (bool, string) { return l.vnetsVia(t, "169.254.10.2") })

	// The restart policy: re-enabled after 3 s, the session comes back,
	// BIRD still sends 5 prefixes, and the limit trips again.
	waitFor(t, 40*time.Second, "restart, re-establishment and a second limit", func() (bool, string) {
		ups := 0
		for _, e := range h.events(t, KindSessionUp) {
			if strings.Contains(e.Summary, "msee1") {
				ups++
			}
		}
		restarts := h.events(t, KindNeighborRestarted)
		return ups >= 2 && len(restarts) >= 1 && len(h.events(t, KindPrefixLimitExceeded)) >= 2,
			fmt.Sprintf("ups %d restarts %d", ups, len(restarts))
	})
	restart := h.events(t, KindNeighborRestarted)[0]
	if d := restart.Time.Sub(first.Time); d < 3*time.Second || d > 5*time.Second {
		t.Errorf("re-enabled %s after the limit, configured 3s", d)
	}
	var metrics string
	h.get(t, "/metrics", &metrics)
	if !regexp.MustCompile(`xwan_bgp_prefix_limit_exceeded_total\{neighbor="msee1"\} [2-9]`).MatchString(metrics) {
		t.Errorf("prefix-limit counter not incremented:\n%s", metrics)
	}
	if !strings.Contains(metrics, `xwan_bgp_prefix_limit_exceeded_total{neighbor="msee2"} 0`) {
		t.Errorf("prefix-limit counter for msee2 is not 0")
	}
}

func TestBIRDDefaultOnlyAndNoDynamicRoutes(t *testing.T) {
	l := newLab(t, birdConf{})
	hc := gatewayConfig()
	for i := range hc.BGP.Neighbors {
		hc.BGP.Neighbors[i].AdvertiseDefault = true
		hc.BGP.Neighbors[i].AdvertiseAll = false
		hc.BGP.Neighbors[i].AcceptDynamic = false
	}
	h := startHelper(t, l.gw, hc)
	waitFor(t, 30*time.Second, "sessions up and the VNets received", func() (bool, string) {
		st := h.status(t)
		ok := st["msee1"].State == "established" && st["msee2"].State == "established" && st["msee1"].PrefixesReceived == 2
		return ok, fmt.Sprintf("%+v", st)
	})
	waitFor(t, 10*time.Second, "BIRD received exactly the default route from each neighbour", func() (bool, string) {
		out, err := l.birdc("show route protocol msee1")
		if err != nil {
			return false, out
		}
		got := regexp.MustCompile(`(?m)^(\d+\.\d+\.\d+\.\d+/\d+)`).FindAllString(out, -1)
		out2, _ := l.birdc("show route protocol msee2")
		got2 := regexp.MustCompile(`(?m)^(\d+\.\d+\.\d+\.\d+/\d+)`).FindAllString(out2, -1)
		return slices.Equal(got, []string{"0.0.0.0/0"}) && slices.Equal(got2, []string{"0.0.0.0/0"}), out + out2
	})
	if out, _ := l.birdc("show route " + sitePrefix); strings.Contains(out, sitePrefix) {
		t.Errorf("the site prefix was advertised with advertise-all off:\n%s", out)
	}
	// Accept-dynamic off: received, not accepted, nothing in the kernel.
	st := h.status(t)["msee1"]
	if st.PrefixesAccepted != 0 || st.RoutesActive != 0 {
		t.Errorf("msee1 status = %+v, want 0 accepted and 0 active", st)
	}
	if rs := l.kernelRoutes(t); len(rs) != 0 {
		t.Errorf("kernel routes with accept-dynamic off: %v", rs)
	}
	var routes []Route
	h.get(t, "/routes", &routes)
	rejected := 0
	for _, r := range routes {
		if r.Rejected {
			rejected++
		}
	}
	if rejected != 4 {
		t.Errorf("routes listing shows %d rejected routes, want 4: %+v", rejected, routes)
	}
}

func TestBIRDRestartSweepsStaleRoutes(t *testing.T) {
	l := newLab(t, birdConf{})
	h := startHelper(t, l.gw, gatewayConfig())
	waitFor(t, 30*time.Second, "VNet routes via the primary", func() (bool, string) { return l.vnetsVia(t, "169.254.10.6") })

	// A crash: no cleanup, the routes stay behind.
	h.kill(t)
	if ok, detail := l.vnetsVia(t, "169.254.10.6"); !ok {
		t.Fatalf("routes gone after SIGKILL (want them left behind): %s", detail)
	}
	// Plus a stale route the next run will not learn again.
	l.gw.MustRun(t, "ip", "route", "add", "198.18.250.0/24", "via", "169.254.10.2", "proto", fmt.Sprint(int(RouteProtocol)), "metric", fmt.Sprint(DefaultKernelPriority))
	// A route of someone else's protocol must survive the sweep.
	l.gw.MustRun(t, "ip", "route", "add", "198.18.251.0/24", "via", "169.254.10.2", "proto", "static")

	h2 := startHelper(t, l.gw, gatewayConfig())
	var swept int
	h2.get(t, "/swept", &swept)
	if swept != 3 {
		t.Errorf("swept %d routes at start, want 3 (two VNets and the stale one)", swept)
	}
	waitFor(t, 30*time.Second, "VNets re-learned via the primary, the stale route gone", func() (bool, string) {
		rs := l.kernelRoutes(t)
		_, stale := rs["198.18.250.0/24"]
		return !stale && rs["198.18.200.0/24"] == "169.254.10.6" && rs["198.18.201.0/24"] == "169.254.10.6", fmt.Sprint(rs)
	})
	if out := l.gw.MustRun(t, "ip", "route", "show", "198.18.251.0/24"); !strings.Contains(out, "proto static") {
		t.Errorf("the sweep removed a route it does not own: %q", out)
	}

	// A clean stop removes xwan's routes.
	h2.stop(t)
	if rs := l.kernelRoutes(t); len(rs) != 0 {
		t.Errorf("routes left after a clean stop: %v", rs)
	}
}
