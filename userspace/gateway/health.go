package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/pathsel"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/probe"
	"github.com/xwan-dev/xwan/userspace/tunnel"
)

// Link health runs on three goroutines:
//   - probeLoop sends each up path's probes when due and notices a path
//     whose probes stopped coming back (probe.Prober.Down), which it hands
//     to the state goroutine at once: sub-second blackhole failover;
//   - the tunnel readers answer the peer's probes and feed replies to the
//     prober (fromTunnel);
//   - the state goroutine (applyChanges) owns the selector: session up and
//     down, probe verdicts, the periodic evaluation and gradual flow moves,
//     and applies every decision to the kernel in order (path state, then
//     tables, then events).

// newSelector builds the path selector with every planned path.
func (g *Gateway) newSelector() error {
	h := g.cfg.Health
	sel, err := pathsel.New(pathsel.Config{
		Thresholds:   pathsel.Thresholds{Loss: h.LossPercent / 100, Jitter: h.Jitter, Latency: h.Latency},
		EvalInterval: h.EvaluateEvery,
		HoldDown:     h.HoldDown,
		MoveShare:    h.MovePerSecond / 100,
	})
	if err != nil {
		return err
	}
	g.sel = sel
	now := time.Now()
	for _, p := range g.paths {
		p.prober = probe.New(probe.Config{Interval: g.cfg.Tunnel.ProbeInterval, DownAfter: h.DownAfter}, now)
		if _, err := sel.AddPath(pathsel.Path{
			ID: p.id, Site: p.siteID, Link: p.linkID,
			Precedence: pathsel.Precedence(p.link.Precedence), Bandwidth: p.link.BandwidthUp,
		}, now); err != nil {
			return err
		}
	}
	return nil
}

// apply carries a selector decision out: kernel path state first (flows
// on a dead path re-pick at once), then the changed sites' tables, then
// the events. Called with mu held.
func (g *Gateway) apply(out pathsel.Output) {
	for _, e := range out.Events {
		if sc, ok := e.(pathsel.PathStateChange); ok {
			p := g.paths[sc.Path-1]
			usable := sc.To != pathsel.Down && p.up
			g.model.PathUp[p.id] = usable
			if err := g.dp.SetPath(p.id, g.pathInfo(p, usable)); err != nil {
				p.lastError = err.Error()
			}
			p.health = sc.To.String()
		}
	}
	for _, site := range out.Changed {
		if err := g.writeTables(site); err != nil {
			g.bus.Publish(eventInternal("tables: " + err.Error()))
		}
	}
	for _, e := range out.Events {
		if ev, ok := g.healthEvent(e); ok {
			g.bus.Publish(ev)
		}
	}
}

func (g *Gateway) siteName(id uint16) string {
	for name, sid := range g.topo.Sites {
		if sid == id {
			return name
		}
	}
	return fmt.Sprint(id)
}

func (g *Gateway) pathList(ids []uint16) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		p := g.paths[id-1]
		parts[i] = fmt.Sprintf("%d(%s->%s)", id, p.link.Name, p.endpoint)
	}
	return strings.Join(parts, ",")
}

// healthEvent turns a selector event into the product's.
func (g *Gateway) healthEvent(e pathsel.Event) (events.Event, bool) {
	switch ev := e.(type) {
	case pathsel.LinkQualityAlert:
		p := g.paths[ev.Path-1]
		return events.Event{Time: ev.Time, Type: events.LinkQualityAlert, Site: p.site, Link: p.link.Name, Remote: p.endpoint.String(),
			Reason: fmt.Sprintf("%s %.1f%s above %.1f%s", ev.Metric, ev.Value, ev.Unit, ev.Threshold, ev.Unit),
			Detail: map[string]string{"path": fmt.Sprint(p.id), "metric": ev.Metric, "value": fmt.Sprintf("%.3f", ev.Value),
				"threshold": fmt.Sprintf("%.3f", ev.Threshold), "unit": ev.Unit}}, true
	case pathsel.LinkQualityClear:
		p := g.paths[ev.Path-1]
		return events.Event{Time: ev.Time, Type: events.LinkQualityClear, Site: p.site, Link: p.link.Name, Remote: p.endpoint.String(),
			Reason: fmt.Sprintf("%s %.1f%s at or under %.1f%s", ev.Metric, ev.Value, ev.Unit, ev.Threshold, ev.Unit),
			Detail: map[string]string{"path": fmt.Sprint(p.id), "metric": ev.Metric, "value": fmt.Sprintf("%.3f", ev.Value),
				"threshold": fmt.Sprintf("%.3f", ev.Threshold), "unit": ev.Unit}}, true
	case pathsel.PathFailover:
		g.counters.failovers.Add(1)
		return events.Event{Time: ev.Time, Type: events.PathFailover, Site: g.siteName(ev.Site), Reason: ev.Reason,
			Detail: map[string]string{"from": g.pathList(ev.From), "to": g.pathList(ev.To)}}, true
	case pathsel.PathFailback:
		g.counters.failbacks.Add(1)
		return events.Event{Time: ev.Time, Type: events.PathFailback, Site: g.siteName(ev.Site), Reason: ev.Reason,
			Detail: map[string]string{"from": g.pathList(ev.From), "to": g.pathList(ev.To)}}, true
	}
	return events.Event{}, false
}

// probeLoop sends probes and watches for paths whose probes stopped
// coming back. It wakes every probeTick: a prober's verdict changes as
// time passes, not only when packets arrive.
func (g *Gateway) probeLoop() {
	defer g.wg.Done()
	const probeTick = 20 * time.Millisecond
	t := time.NewTicker(probeTick)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for _, p := range g.paths {
			g.mu.RLock()
			up := p.up
			g.mu.RUnlock()
			if !up {
				continue
			}
			if payload, ok := p.prober.Next(now); ok {
				_ = g.send(p.id, tunnel.FrameProbe, payload)
			}
			if down := p.prober.Down(now); down != p.probeDown {
				p.probeDown = down
				misses := p.prober.ConsecutiveMisses(now)
				id := p.id
				g.queue(func() { g.apply(g.sel.ProbeDown(id, down, misses, now)) })
			}
		}
	}
}

// onProbeFrame answers a peer's probe or records a reply; it runs on the
// session's reader goroutine.
func (g *Gateway) onProbeFrame(s *tunnel.Session, t tunnel.FrameType, payload []byte) {
	g.mu.RLock()
	p := g.findPath(s.Info(), false)
	g.mu.RUnlock()
	if p == nil {
		return
	}
	now := time.Now()
	switch t {
	case tunnel.FrameProbe:
		if reply, err := p.prober.OnProbe(payload, now); err == nil {
			_ = s.Send(tunnel.FrameProbeReply, reply)
		}
	case tunnel.FrameProbeReply:
		_ = p.prober.OnReply(payload, now)
	}
}

// evaluate runs the selector's periodic evaluation and the gradual moves
// of established flows; called on the state goroutine with mu held.
func (g *Gateway) evaluate(now time.Time) {
	g.apply(g.sel.Tick(now, func(id uint16) (probe.Stats, bool) {
		if id == 0 || int(id) > len(g.paths) {
			return probe.Stats{}, false
		}
		return g.paths[id-1].prober.Stats(now), true
	}))
	g.moveFlows(now)
}

// moveFlows executes the selector's migration plan on the kernel's flow
// cache: flows on a path that no longer takes new flows are moved a
// bounded share at a time.
func (g *Gateway) moveFlows(now time.Time) {
	migrating := false
	for _, peer := range g.cfg.Peers {
		if g.sel.Migrating(g.topo.Sites[peer.Site]) {
			migrating = true
		}
	}
	if !migrating {
		return
	}
	flows, err := g.dp.Flows()
	if err != nil {
		return
	}
	refs := make([]pathsel.FlowRef, 0, len(flows))
	index := make([]int, 0, len(flows))
	for i, f := range flows {
		if !policy.Transport(f.Entry.Transport).Tunnel() || f.Entry.PathId == 0 {
			continue
		}
		link := uint8(0)
		if int(f.Entry.RuleId) < len(g.cfg.Rules) {
			link = g.topo.Links[g.cfg.Rules[f.Entry.RuleId].Action.PreferredLink]
		} else {
			link = g.topo.Links[g.cfg.Default.PreferredLink]
		}
		key := packet.Key{Src: f.Key.Saddr, Dst: f.Key.Daddr, Sport: f.Key.Sport, Dport: f.Key.Dport, VLAN: f.Key.Vlan, Proto: f.Key.Proto}
		refs = append(refs, pathsel.FlowRef{Site: f.Entry.SiteId, Link: link, Path: f.Entry.PathId, Hash: key.Hash()})
		index = append(index, i)
	}
	for _, m := range g.sel.Moves(now, refs) {
		if m.Immediate {
			continue // its path is down: the kernel re-picks on the next packet
		}
		f := flows[index[m.Index]]
		if m.To == 0 {
			if err := g.dp.DeleteFlow(f.Key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				g.counters.moveErrors.Add(1)
			}
			continue
		}
		e := f.Entry
		e.PathId = m.To
		if err := g.dp.SetFlow(f.Key, e); err != nil {
			g.counters.moveErrors.Add(1)
			continue
		}
		g.counters.flowsMoved.Add(1)
	}
}

// healthTimer runs evaluate on the state goroutine at the selector's next
// evaluation, and every second while flows are being moved.
func (g *Gateway) healthTimer() {
	defer g.wg.Done()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		done := make(chan time.Time, 1)
		g.queue(func() {
			now := time.Now()
			g.evaluate(now)
			done <- g.sel.NextTick(now)
		})
		var next time.Time
		select {
		case next = <-done:
		case <-g.ctx.Done():
			return
		}
		wait := min(time.Until(next), time.Second)
		t.Reset(max(wait, 10*time.Millisecond))
	}
}

// usable returns the paths that take a site's new flows.
func (g *Gateway) usable(siteID uint16) []uint16 { return g.sel.Selected(siteID) }
