package gateway

import (
	"net/netip"
	"time"

	"github.com/xwan-dev/xwan/userspace/api"
	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

func eventInternal(reason string) events.Event {
	return events.Event{Type: "internal_error", Reason: reason}
}

var wanReasonNames = []string{"peer", "unknown_peer", "other", "fragment"}

// Status implements api.Provider.
func (g *Gateway) Status() (api.Status, error) {
	g.mu.RLock()
	st := api.Status{
		Site: g.cfg.Site, Role: string(g.cfg.Role), Started: g.started, Generation: g.generation,
		Rules: len(g.cfg.Rules), PathsTotal: len(g.paths), InnerMTU: g.innerMTU, AdoptedBPF: g.dp.Adopted,
		Reasons: map[string]api.Counter{}, WAN: map[string]api.Counter{},
	}
	for _, p := range g.paths {
		if p.up {
			st.PathsUp++
		}
	}
	g.mu.RUnlock()
	for _, l := range g.cfg.WAN {
		st.Links = append(st.Links, api.Link{Name: l.Name, Interface: l.Interface, Address: g.links[l.Name].String(), Precedence: int(l.Precedence), OffCloud: l.OffCloud})
	}
	reasons, err := g.dp.ReasonStats()
	if err != nil {
		return st, err
	}
	for i, c := range reasons {
		if c.Packets > 0 {
			st.Reasons[verdict.Reason(i).String()] = api.Counter{Packets: c.Packets, Bytes: c.Bytes}
		}
	}
	wan, err := g.dp.WANStats()
	if err != nil {
		return st, err
	}
	for i, c := range wan {
		if c.Packets > 0 && i < len(wanReasonNames) {
			st.WAN[wanReasonNames[i]] = api.Counter{Packets: c.Packets, Bytes: c.Bytes}
		}
	}
	return st, nil
}

// Paths implements api.Provider.
func (g *Gateway) Paths() ([]api.Path, error) {
	stats, err := g.dp.PathStats()
	if err != nil {
		return nil, err
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	slots := map[uint16]int{}
	for k, t := range g.model.Tables {
		if k.Link != 0 {
			continue
		}
		for _, id := range t {
			slots[id]++
		}
	}
	now := time.Now()
	health := map[uint16]pathselStatus{}
	for _, st := range g.sel.Status(now) {
		health[st.ID] = pathselStatus{state: st.State.String(), selected: st.Selected, alerts: st.Alerts}
	}
	var out []api.Path
	for _, p := range g.sortedPaths() {
		ap := api.Path{
			ID: p.id, Site: p.site, Link: p.link.Name, Endpoint: p.endpoint.String(), Dialer: p.dialer,
			State: "down", Since: p.since, Weight: p.link.BandwidthUp,
			Share: float64(slots[p.id]) / float64(policy.MaglevSlots), LastError: p.lastError,
			Packets: stats[p.id].Packets, Bytes: stats[p.id].Bytes,
		}
		if p.up {
			ap.State = "up"
			ap.Remote = p.remote.String()
		}
		h := health[p.id]
		ap.Health, ap.Selected, ap.Alerts = h.state, h.selected, h.alerts
		ap.RTTms, ap.JitterMs, ap.LossPct = -1, -1, -1
		if st := p.prober.Stats(now); st.Samples > 0 {
			ap.RTTms = float64(st.RTTMean) / 1e6
			ap.JitterMs = float64(st.Jitter) / 1e6
			ap.LossPct = 100 * st.Loss
		}
		out = append(out, ap)
	}
	return out, nil
}

// Flows implements api.Provider.
func (g *Gateway) Flows() ([]api.Flow, error) {
	flows, err := g.dp.Flows()
	if err != nil {
		return nil, err
	}
	now := monotonicNow()
	g.mu.RLock()
	defer g.mu.RUnlock()
	siteName := map[uint16]string{}
	for name, id := range g.topo.Sites {
		siteName[id] = name
	}
	out := make([]api.Flow, 0, len(flows))
	for _, f := range flows {
		rule := "default"
		if int(f.Entry.RuleId) < len(g.cfg.Rules) {
			rule = g.cfg.Rules[f.Entry.RuleId].Name
		}
		out = append(out, api.Flow{
			Src: netip.AddrFrom16(f.Key.Saddr).Unmap().String(), Dst: netip.AddrFrom16(f.Key.Daddr).Unmap().String(),
			Proto: f.Key.Proto, Sport: f.Key.Sport, Dport: f.Key.Dport, VLAN: f.Key.Vlan,
			Rule: rule, Path: f.Entry.PathId, Site: siteName[f.Entry.SiteId],
			Transport: policy.Transport(f.Entry.Transport).String(), Secondary: f.Entry.Flags&verdict.FlagSecondary != 0,
			Current: f.Entry.Generation == g.generation,
			AgeSec:  now.Sub(time.Duration(f.Entry.CreatedNs)).Seconds(),
		})
	}
	return out, nil
}

// Counters returns the userspace data path's counters by name.
func (g *Gateway) Counters() map[string]uint64 {
	c := &g.counters
	out := map[string]uint64{
		"lan_to_tunnel": c.lanToTunnel.Load(), "device_to_tunnel": c.tunToTunnel.Load(),
		"tunnel_to_lan": c.tunnelToLAN.Load(), "no_metadata": c.noMeta.Load(), "not_ip": c.notIP.Load(),
		"path_down": c.pathDown.Load(), "too_big": c.tooBig.Load(), "mss_clamped": c.mssClamped.Load(),
		"send_errors": c.sendErrors.Load(), "device_write_errors": c.tunWriteErrors.Load(),
		"device_no_decision": c.tunNoDecision.Load(), "handshake_failures": c.handshakeFailures.Load(),
		"flows_moved": c.flowsMoved.Load(), "flow_move_errors": c.moveErrors.Load(),
	}
	for name, v := range c.tunnel.Snapshot() { // record_*, rekey*, pion_*
		out[name] = v
	}
	return out
}

type pathselStatus struct {
	state    string
	selected bool
	alerts   []string
}
