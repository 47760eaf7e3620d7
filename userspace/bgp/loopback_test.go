// gobgp listens through net.ListenConfig, which Go 1.24+ turns into MPTCP
// sockets, and MPTCP sockets refuse TCP_MD5SIG: the listener would drop
// every MD5-signed SYN. cmd/xwand carries the same directive.
//go:debug multipathtcp=0

package bgp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// This file runs xwan's Server against two plain gobgp speakers standing
// for the provider's routers, over loopback addresses: no privileges, no
// namespaces, so the policy logic is exercised on every `go test`. The
// BIRD interop tests (interop_test.go) repeat the important cases against
// a real third-party implementation.

var labPassword = "s3cret"

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// recorder is a RouteSink and an event collector.
type recorder struct {
	mu     sync.Mutex
	routes map[netip.Prefix]Route
	events []Event
}

func newRecorder() *recorder { return &recorder{routes: map[netip.Prefix]Route{}} }

func (r *recorder) RouteAdded(rt Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[rt.Prefix] = rt
	return nil
}

func (r *recorder) RouteWithdrawn(rt Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routes, rt.Prefix)
	return nil
}

func (r *recorder) event(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) route(p string) (Route, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.routes[netip.MustParsePrefix(p)]
	return rt, ok
}

func (r *recorder) count(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countLocked(kind)
}

// countLocked is count with mu held.
func (r *recorder) countLocked(kind string) int {
	n := 0
	for _, e := range r.events {
		if e.Kind() == kind {
			n++
		}
	}
	return n
}

func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sim is a gobgp speaker playing the provider's router.
type sim struct {
	s    *server.BgpServer
	addr string
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLogger is quiet unless BGPDEBUG is set, for debugging a failing test.
func testLogger() *slog.Logger {
	if os.Getenv("BGPDEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quietLogger()
}

func startSim(t *testing.T, addr string, port int, xwanPort int, password string, prefixes ...string) *sim {
	t.Helper()
	s := server.NewBgpServer(server.LoggerOption(&gobgpLogger{log: quietLogger(), diag: newDiagnostics(time.Now)}))
	go s.Serve()
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 12076, RouterId: addr, ListenPort: int32(port), ListenAddresses: []string{addr},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: loopA, PeerAsn: 65010, AuthPassword: password},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
		Transport: &api.Transport{LocalAddress: addr, RemotePort: uint32(xwanPort)},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range prefixes {
		path, err := localPath(netip.MustParsePrefix(p))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
			t.Fatal(err)
		}
	}
	return &sim{s: s, addr: addr}
}

// routes is what the sim has learned from xwan: prefix -> "MED=.. path=..".
func (m *sim) routes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := m.s.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: familyOf(netip.IPv4Unspecified())}, func(d *api.Destination) {
		for _, p := range d.Paths {
			r, err := decodePath(p)
			if err != nil || r.Local {
				continue
			}
			out[r.Prefix.String()] = fmt.Sprintf("med=%d path=%v", r.MED, r.ASPath)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type loopbackLab struct {
	srv        *Server
	rec        *recorder
	reg        *prometheus.Registry
	sim1, sim2 *sim
}

// startLoopback starts two sims (127.0.0.2 primary, 127.0.0.3 secondary,
// each announcing the VNet prefixes) and an xwan Server on 127.0.0.1.
// change adjusts the xwan config before it starts.
func startLoopback(t *testing.T, change func(c *Config)) *loopbackLab {
	t.Helper()
	xport := freePort(t, loopA)
	p2, p3 := freePort(t, loopB), freePort(t, loopC)
	nb := func(name, addr string, port, metric int) Neighbor {
		return Neighbor{
			Name: name, PeerAddress: netip.MustParseAddr(addr), PeerPort: uint16(port), PeerASN: 12076,
			LocalAddress: netip.MustParseAddr(loopA), Password: labPassword,
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, ConnectRetry: time.Second,
			Metric: metric, AdvertiseAll: true, AcceptDynamic: true,
		}
	}
	cfg := Config{
		ASN: 65010, ListenPort: xport, ListenAddresses: []netip.Addr{netip.MustParseAddr(loopA)},
		Neighbors: []Neighbor{nb("msee1", loopB, p2, 90), nb("msee2", loopC, p3, 100)},
	}
	if change != nil {
		change(&cfg)
	}
	lab := &loopbackLab{rec: newRecorder(), reg: prometheus.NewRegistry()}
	srv, err := New(cfg, Options{Logger: testLogger(), Registerer: lab.reg, OnEvent: lab.rec.event, Sinks: []RouteSink{lab.rec}})
	if err != nil {
		t.Fatal(err)
	}
	lab.srv = srv
	ctx := context.Background()
	if err := srv.SetNetworks(ctx, pfx("198.18.10.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	lab.sim1 = startSim(t, loopB, p2, xport, labPassword, "198.18.200.0/24", "198.18.201.0/24")
	lab.sim2 = startSim(t, loopC, p3, xport, labPassword, "198.18.200.0/24", "198.18.201.0/24")
	return lab
}

func (l *loopbackLab) states(t *testing.T) map[string]NeighborStatus {
	t.Helper()
	sts, err := l.srv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]NeighborStatus{}
	for _, s := range sts {
		out[s.Name] = s
	}
	return out
}

func (l *loopbackLab) waitEstablished(t *testing.T, names ...string) {
	t.Helper()
	waitFor(t, 20*time.Second, "sessions established", func() (bool, string) {
		sts := l.states(t)
		for _, n := range names {
			if sts[n].State != "established" {
				return false, fmt.Sprintf("%s: %s (%s)", n, sts[n].State, sts[n].LastError)
			}
		}
		return true, ""
	})
}

func TestLoopbackPrimarySecondary(t *testing.T) {
	lab := startLoopback(t, nil)
	lab.waitEstablished(t, "msee1", "msee2")

	// Outbound: both sims announce the VNets, the primary's (lower
	// metric, higher local-pref) win.
	for _, p := range []string{"198.18.200.0/24", "198.18.201.0/24"} {
		waitFor(t, 10*time.Second, p+" via the primary", func() (bool, string) {
			r, ok := lab.rec.route(p)
			return ok && r.Neighbor == "msee1" && r.NextHop == netip.MustParseAddr(loopB) && r.LocalPref == 910, fmt.Sprintf("%+v", r)
		})
	}
	// Inbound: the primary gets MED 90 and a plain path, the secondary MED
	// 100 and the AS prepended twice.
	waitFor(t, 10*time.Second, "our network at both sims", func() (bool, string) {
		r1, r2 := lab.sim1.routes(t), lab.sim2.routes(t)
		ok := r1["198.18.10.0/24"] == "med=90 path=[65010]" && r2["198.18.10.0/24"] == "med=100 path=[65010 65010 65010]"
		return ok, fmt.Sprintf("sim1 %v sim2 %v", r1, r2)
	})

	// The routes listing shows both paths, the best first.
	rs, err := lab.srv.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range rs {
		if r.Prefix.String() == "198.18.200.0/24" {
			lines = append(lines, fmt.Sprintf("%s best=%v lp=%d", r.Neighbor, r.Best, r.LocalPref))
		}
	}
	if want := []string{"msee1 best=true lp=910", "msee2 best=false lp=900"}; !slices.Equal(lines, want) {
		t.Errorf("routes for 198.18.200.0/24 = %q, want %q", lines, want)
	}
	st := lab.states(t)["msee1"]
	if st.PrefixesReceived != 2 || st.PrefixesAccepted != 2 || st.PrefixesAdvertised != 1 || st.RoutesActive != 2 ||
		st.HoldTime != 9*time.Second || st.Keepalive != 3*time.Second || st.Since.IsZero() {
		t.Errorf("msee1 status = %+v", st)
	}
	if n := testutil.CollectAndCount(lab.reg, "xwan_bgp_peer_up"); n != 2 {
		t.Errorf("xwan_bgp_peer_up series = %d, want 2", n)
	}
	if err := testutil.GatherAndCompare(lab.reg, strings.NewReader(`
# HELP xwan_bgp_routes_installed Best routes learned from the neighbor and handed to the kernel and other route sinks.
# TYPE xwan_bgp_routes_installed gauge
xwan_bgp_routes_installed{neighbor="msee1"} 2
xwan_bgp_routes_installed{neighbor="msee2"} 0
`), "xwan_bgp_routes_installed"); err != nil {
		t.Error(err)
	}

	// Primary gone: the secondary takes over.
	if err := lab.sim1.s.DisablePeer(context.Background(), &api.DisablePeerRequest{Address: loopA}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "routes via the secondary", func() (bool, string) {
		r, ok := lab.rec.route("198.18.200.0/24")
		return ok && r.Neighbor == "msee2" && r.NextHop == netip.MustParseAddr(loopC), fmt.Sprintf("%+v", r)
	})
	waitFor(t, 5*time.Second, "session down event", func() (bool, string) {
		return lab.rec.count(KindSessionDown) == 1, fmt.Sprint(lab.rec.count(KindSessionDown))
	})
	lab.rec.mu.Lock()
	var down SessionDown
	for _, e := range lab.rec.events {
		if d, ok := e.(SessionDown); ok {
			down = d
		}
	}
	lab.rec.mu.Unlock()
	if down.Neighbor != "msee1" || !strings.Contains(down.Reason, "received NOTIFICATION code 6(cease) subcode 2(administrative shutdown)") {
		t.Errorf("down event = %+v, want msee1 with the Cease the sim sent", down)
	}
}

func TestLoopbackAcceptDynamicOffAndDefaultOnly(t *testing.T) {
	lab := startLoopback(t, func(c *Config) {
		for i := range c.Neighbors {
			c.Neighbors[i].AcceptDynamic = false
			c.Neighbors[i].AdvertiseAll = false
			c.Neighbors[i].AdvertiseDefault = true
		}
	})
	lab.waitEstablished(t, "msee1", "msee2")
	waitFor(t, 10*time.Second, "prefixes received but not accepted", func() (bool, string) {
		st := lab.states(t)["msee1"]
		return st.PrefixesReceived == 2 && st.PrefixesAccepted == 0, fmt.Sprintf("%+v", st)
	})
	waitFor(t, 10*time.Second, "only the default route at the sims", func() (bool, string) {
		r1 := lab.sim1.routes(t)
		_, def := r1["0.0.0.0/0"]
		return len(r1) == 1 && def, fmt.Sprint(r1)
	})
	lab.rec.mu.Lock()
	n := len(lab.rec.routes)
	lab.rec.mu.Unlock()
	if n != 0 {
		t.Errorf("%d routes reached the sink with accept-dynamic off", n)
	}
	rs, err := lab.srv.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rejected := 0
	for _, r := range rs {
		if r.Rejected {
			rejected++
		} else if !r.Local {
			t.Errorf("learned route in the table: %+v", r)
		}
	}
	if rejected != 4 {
		t.Errorf("listed %d rejected routes, want 4 (2 per neighbour)", rejected)
	}
}

func TestLoopbackWrongPassword(t *testing.T) {
	xport := freePort(t, loopA)
	p2 := freePort(t, loopB)
	srv, err := New(Config{
		ASN: 65010, ListenPort: xport, ListenAddresses: []netip.Addr{netip.MustParseAddr(loopA)},
		Neighbors: []Neighbor{{
			Name: "msee1", PeerAddress: netip.MustParseAddr(loopB), PeerPort: uint16(p2), PeerASN: 12076,
			LocalAddress: netip.MustParseAddr(loopA), Password: "right", HoldTime: 9 * time.Second, ConnectRetry: time.Second,
		}},
	}, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	startSim(t, loopB, p2, xport, "wrong")
	waitFor(t, 15*time.Second, "a connect error in the status", func() (bool, string) {
		sts, err := srv.Status(context.Background())
		if err != nil {
			return false, err.Error()
		}
		st := sts[0]
		return st.State != "established" && strings.Contains(st.LastError, "TCP MD5 password mismatch"), fmt.Sprintf("%+v", st)
	})
}

func TestLoopbackPrefixLimitRestart(t *testing.T) {
	lab := startLoopback(t, func(c *Config) {
		c.Neighbors[0].MaxReceived = 1 // the sims send 2
		c.Neighbors[0].PrefixLimitRestart = RestartPolicy{After: 2 * time.Second}
		c.Neighbors[1].MaxReceived = 1
		c.Neighbors[1].PrefixLimitRestart = RestartPolicy{Manual: true}
	})
	waitFor(t, 20*time.Second, "both neighbours stopped by the prefix limit", func() (bool, string) {
		sts := lab.states(t)
		return sts["msee1"].AdminState == "prefix-limit" && sts["msee2"].AdminState == "prefix-limit", fmt.Sprintf("%+v", sts)
	})
	stopped := time.Now()
	st := lab.states(t)
	if st["msee1"].RestartAt.IsZero() || !st["msee2"].RestartAt.IsZero() {
		t.Errorf("restart pending: msee1 %v (want set), msee2 %v (want none, manual)", st["msee1"].RestartAt, st["msee2"].RestartAt)
	}
	for _, n := range []string{"msee1", "msee2"} {
		if want := "received more than 1 prefixes: sent NOTIFICATION cease/maximum number of prefixes reached"; st[n].LastError != want {
			t.Errorf("%s last error = %q, want %q", n, st[n].LastError, want)
		}
	}
	// gobgp would leave msee1 idle forever; the policy re-enables it.
	waitFor(t, 10*time.Second, "msee1 re-enabled", func() (bool, string) {
		s := lab.states(t)["msee1"]
		return s.AdminState == "up" && lab.rec.count(KindNeighborRestarted) == 1, fmt.Sprintf("%+v", s)
	})
	if d := time.Since(stopped); d < time.Second {
		t.Errorf("re-enabled after %s, configured 2s", d)
	}
	// msee2 (manual) stays down until an operator acts.
	if s := lab.states(t)["msee2"]; s.AdminState != "prefix-limit" {
		t.Errorf("manual neighbour came back by itself: %+v", s)
	}
	if got := testutil.ToFloat64(lab.srv.met.prefixLimit.WithLabelValues("msee2")); got != 1 {
		t.Errorf("xwan_bgp_prefix_limit_exceeded_total{msee2} = %v, want 1", got)
	}
	if err := lab.srv.EnableNeighbor(context.Background(), "msee2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "msee2 re-enabled by the operator", func() (bool, string) {
		s := lab.states(t)["msee2"]
		return s.AdminState == "up", fmt.Sprintf("%+v", s)
	})
	lab.rec.mu.Lock()
	defer lab.rec.mu.Unlock()
	var got []string
	for _, e := range lab.rec.events {
		switch e := e.(type) {
		case NeighborRestarted:
			got = append(got, fmt.Sprintf("restarted %s operator=%v", e.Neighbor, e.Operator))
		case PrefixLimitExceeded:
			got = append(got, fmt.Sprintf("limit %s manual=%v", e.Neighbor, e.Manual))
		case SessionDown:
			if !e.PrefixLimit {
				t.Errorf("session down without the prefix-limit flag: %+v", e)
			}
		}
	}
	slices.Sort(got)
	want := []string{"limit msee1 manual=false", "limit msee2 manual=true", "restarted msee1 operator=false", "restarted msee2 operator=true"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestLoopbackNetworksAndAdvertiseCap(t *testing.T) {
	lab := startLoopback(t, func(c *Config) {
		c.Neighbors[0].MaxAdvertised = 2
	})
	lab.waitEstablished(t, "msee1", "msee2")
	ctx := context.Background()
	if err := lab.srv.SetNetworks(ctx, pfx("198.18.10.0/24", "198.18.12.0/24", "198.18.11.0/24")); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]string) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	waitFor(t, 10*time.Second, "capped advertisement", func() (bool, string) {
		k1, k2 := keys(lab.sim1.routes(t)), keys(lab.sim2.routes(t))
		// 198.18.10.0/24 was advertised before and keeps its place; the
		// room left goes to the lowest new prefix.
		return slices.Equal(k1, []string{"198.18.10.0/24", "198.18.11.0/24"}) && len(k2) == 3, fmt.Sprint(k1, k2)
	})
	st := lab.states(t)["msee1"]
	if st.AdvertiseSuppressed != 1 || st.PrefixesAdvertised != 2 {
		t.Errorf("status = %+v, want 2 advertised and 1 suppressed", st)
	}
	if n := lab.rec.count(KindAdvertiseLimit); n != 2 {
		t.Errorf("%d advertise-limit events, want the 80%% warning and the cap", n)
	}
	// Removing an advertised network withdraws it everywhere and frees
	// room for the suppressed one (a soft reset out sends it).
	if err := lab.srv.SetNetworks(ctx, pfx("198.18.11.0/24", "198.18.12.0/24")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "withdrawal and the freed slot used", func() (bool, string) {
		k1, k2 := keys(lab.sim1.routes(t)), keys(lab.sim2.routes(t))
		want := []string{"198.18.11.0/24", "198.18.12.0/24"}
		return slices.Equal(k1, want) && slices.Equal(k2, want), fmt.Sprint(k1, k2)
	})
	if st := lab.states(t)["msee1"]; st.AdvertiseSuppressed != 0 {
		t.Errorf("suppressed = %d after the removal", st.AdvertiseSuppressed)
	}
}

// Addresses of the loopback tests, on the loopback of the test binary's
// own namespace (see TestMain).
const (
	loopA = "169.254.250.1"
	loopB = "169.254.250.2"
	loopC = "169.254.250.3"
)
