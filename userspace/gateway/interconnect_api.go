package gateway

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/xwan-dev/xwan/userspace/api"
	"github.com/xwan-dev/xwan/userspace/monitor"
	"github.com/xwan-dev/xwan/userspace/policy"
)

// These methods implement api.InterconnectProvider.
var _ api.InterconnectProvider = (*Gateway)(nil)

// Routes lists this site's LAN prefixes (connected), the peers' prefixes
// over the mesh (static) and the routes learned from BGP neighbours
// (dynamic). For a prefix with several routes, the active one is the one
// the kernel and the LAN program use: the configuration's before BGP's,
// and BGP's best among its own.
func (g *Gateway) Routes(ctx context.Context) ([]api.Route, error) {
	dests, err := g.dp.Dests()
	if err != nil {
		return nil, err
	}
	datapath := func(p netip.Prefix) string {
		d, ok := dests[p]
		if !ok {
			return ""
		}
		switch d.Kind {
		case policy.DestLocal:
			return "local"
		case policy.DestMesh:
			return "mesh"
		case policy.DestBackhaul:
			return "backhaul"
		}
		return fmt.Sprintf("kind %d", d.Kind)
	}
	var out []api.Route
	lan := ""
	if len(g.cfg.LAN.Interfaces) > 0 {
		lan = g.cfg.LAN.Interfaces[0]
	}
	for _, p := range g.cfg.LAN.Prefixes {
		out = append(out, api.Route{Prefix: p.String(), Type: api.RouteConnected, Interface: lan, Active: true, Datapath: datapath(p)})
	}
	g.mu.RLock()
	for _, peer := range g.cfg.Peers {
		state := "down"
		if len(g.usable(g.topo.Sites[peer.Site])) > 0 {
			state = "up"
		}
		for _, p := range peer.Prefixes {
			out = append(out, api.Route{Prefix: p.String(), Type: api.RouteStatic, Interface: TunName, Peer: peer.Site,
				Active: true, State: state, Datapath: datapath(p)})
		}
	}
	g.mu.RUnlock()

	if s := g.ic.bgp; s != nil {
		learned, err := s.Routes(ctx)
		if err != nil {
			return nil, err
		}
		ifaces := map[netip.Addr]string{}
		for _, r := range learned {
			if r.Local {
				continue // xwan's own networks: what it advertises (xwanctl bgp counts them)
			}
			ar := api.Route{
				Prefix: r.Prefix.String(), Type: api.RouteDynamic, Metric: r.Metric, Peer: r.Neighbor,
				LocalPref: r.LocalPref, MED: r.MED, ASPath: r.ASPath, Rejected: r.Rejected,
			}
			if r.NextHop.IsValid() {
				ar.NextHop = r.NextHop.String()
				if _, ok := ifaces[r.NextHop]; !ok {
					ifaces[r.NextHop] = interfaceTowards(r.NextHop)
				}
				ar.Interface = ifaces[r.NextHop]
			}
			switch {
			case r.Rejected:
				ar.Note = "not accepted (accept_dynamic is off)"
			case r.Best && g.ic.configured[r.Prefix]:
				ar.Note = "the configured route takes precedence"
			case r.Best:
				ar.Active = true
				ar.Datapath = datapath(r.Prefix)
			}
			out = append(out, ar)
		}
	}
	order := map[string]int{api.RouteConnected: 0, api.RouteStatic: 1, api.RouteDynamic: 2}
	slices.SortStableFunc(out, func(a, b api.Route) int {
		pa, pb := netip.MustParsePrefix(a.Prefix), netip.MustParsePrefix(b.Prefix)
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(pa.Bits(), pb.Bits()); c != 0 {
			return c
		}
		if a.Active != b.Active {
			if a.Active {
				return -1
			}
			return 1
		}
		return cmp.Compare(order[a.Type], order[b.Type])
	})
	return out, nil
}

// interfaceTowards is the interface the kernel would use for a next hop.
func interfaceTowards(a netip.Addr) string {
	rs, err := netlink.RouteGet(net.IP(a.AsSlice()))
	if err != nil || len(rs) == 0 {
		return ""
	}
	l, err := netlink.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		return ""
	}
	return l.Attrs().Name
}

func notConfigured(section string) error {
	return fmt.Errorf("%w: the configuration has no %s section", api.ErrNotConfigured, section)
}

// BGPNeighbors reports every neighbour in configuration order.
func (g *Gateway) BGPNeighbors(ctx context.Context) ([]api.BGPNeighbor, error) {
	s := g.ic.bgp
	if s == nil {
		return nil, notConfigured("bgp:")
	}
	sts, err := s.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.BGPNeighbor, 0, len(sts))
	for _, st := range sts {
		out = append(out, api.BGPNeighbor{
			Name: st.Name, Peer: st.Peer.String(), PeerASN: st.PeerASN, LocalASN: st.LocalASN,
			State: st.State, AdminState: st.AdminState, Since: st.Since, UptimeSec: st.Uptime.Seconds(),
			HoldTimeSec: st.HoldTime.Seconds(), KeepaliveSec: st.Keepalive.Seconds(), ConnectRetrySec: st.ConnectRetry.Seconds(),
			Metric: st.Metric, LocalPref: st.LocalPref,
			Received: st.PrefixesReceived, Accepted: st.PrefixesAccepted, Advertised: st.PrefixesAdvertised, Active: st.RoutesActive,
			MaxReceived: st.MaxReceived, MaxAdvertised: st.MaxAdvertised, Suppressed: st.AdvertiseSuppressed, Flaps: st.Flaps,
			LastError: st.LastError, LastErrorAt: st.LastErrorAt, RestartAt: st.RestartAt,
		})
	}
	return out, nil
}

// SetBGPNeighbor enables or disables a neighbour.
func (g *Gateway) SetBGPNeighbor(ctx context.Context, name string, enable bool) error {
	s := g.ic.bgp
	if s == nil {
		return notConfigured("bgp:")
	}
	if !g.hasNeighbor(name) {
		return fmt.Errorf("%w: no BGP neighbor %q", api.ErrNotFound, name)
	}
	if enable {
		return s.EnableNeighbor(ctx, name)
	}
	return s.DisableNeighbor(ctx, name, "disabled by an operator (xwanctl)")
}

func (g *Gateway) hasNeighbor(name string) bool {
	for _, n := range g.cfg.BGP.Neighbors {
		if n.Name == name {
			return true
		}
	}
	return false
}

// Monitors reports every LAN monitoring target in configuration order.
func (g *Gateway) Monitors() ([]api.Monitor, error) {
	m := g.ic.monitor
	if m == nil {
		return nil, notConfigured("lan_monitoring:")
	}
	sources := map[string]netip.Addr{}
	intervals := map[string]float64{}
	for _, t := range g.cfg.LANMonitoring.Targets {
		sources[t.Name], intervals[t.Name] = t.Source, t.Interval.Seconds()
	}
	var out []api.Monitor
	for _, st := range m.Status() {
		am := api.Monitor{
			Name: st.Target, Address: st.Address.String(), State: string(st.State), Since: st.Since,
			IntervalSec: intervals[st.Target], Loss: st.Loss, RTTSec: st.LastRTT.Seconds(),
			LastOutcome: string(st.Last.Outcome), LastReason: st.Last.Reason,
		}
		if src := sources[st.Target]; src.IsValid() {
			am.Source = src.String()
		}
		out = append(out, am)
	}
	return out, nil
}

// TestConnectivity runs monitor.TestConnectivity in xwand's namespace.
func (g *Gateway) TestConnectivity(ctx context.Context, to, from netip.Addr) (api.ConnectivityResult, error) {
	res := monitor.TestConnectivity(ctx, to, from)
	out := api.ConnectivityResult{Outcome: string(res.Outcome), To: to.String(), Reason: res.Reason}
	if from.IsValid() {
		out.From = from.String()
	}
	if res.Outcome == monitor.Success {
		out.RTTSec = res.RTT.Seconds()
	}
	return out, nil
}
