package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/tunnel"
	"github.com/xwan-dev/xwan/userspace/xsk"
)

// Start attaches the XDP programs, opens the AF_XDP sockets, listens on
// and dials the tunnels, and starts moving packets.
func (g *Gateway) Start() error {
	g.wg.Add(1)
	go g.applyChanges()

	for _, ifname := range g.cfg.LAN.Interfaces {
		if _, err := g.dp.Attach(ifname); err != nil {
			return fmt.Errorf("lan %s: %w", ifname, err)
		}
		if err := g.openXSKs(ifname); err != nil {
			return fmt.Errorf("lan %s: AF_XDP: %w", ifname, err)
		}
	}
	for _, l := range g.cfg.WAN {
		if _, err := g.dp.AttachWAN(l.Interface); err != nil {
			return fmt.Errorf("wan %s: %w", l.Name, err)
		}
	}
	keepalive := g.cfg.Tunnel.Keepalive
	for _, l := range g.cfg.WAN {
		if !l.OffCloud {
			continue
		}
		ln, err := tunnel.Listen(tunnel.ListenerConfig{
			Identity:          g.identity,
			Link:              tunnel.Link{Name: l.Interface, Addr: netip.AddrPortFrom(g.links[l.Name], g.cfg.Tunnel.Port), BindToDevice: true},
			AllowSite:         g.isPeer,
			KeepaliveInterval: keepalive,
			OnFrame:           g.fromTunnel,
			OnFrames:          g.fromTunnelBatch,
			Counters:          &g.counters.tunnel,
			OnEvent:           g.tunnelEvent,
		})
		if err != nil {
			return fmt.Errorf("wan %s: listening on port %d: %w", l.Name, g.cfg.Tunnel.Port, err)
		}
		g.listeners = append(g.listeners, ln)
	}
	for _, p := range g.paths {
		if !p.dialer {
			continue
		}
		cp, err := tunnel.NewPath(tunnel.PathConfig{
			Session: tunnel.SessionConfig{
				Identity:          g.identity,
				Link:              tunnel.Link{Name: p.link.Interface, Addr: netip.AddrPortFrom(g.links[p.link.Name], 0), BindToDevice: true},
				Remote:            p.endpoint,
				Site:              p.site,
				Role:              tunnel.RoleClient,
				KeepaliveInterval: keepalive,
				OnFrame:           g.fromTunnel,
				OnFrames:          g.fromTunnelBatch,
				Counters:          &g.counters.tunnel,
				RekeyInterval:     g.cfg.Tunnel.RekeyInterval, // 0: tunnel's default
			},
			Backoff: tunnel.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second},
			OnEvent: g.tunnelEvent,
		})
		if err != nil {
			return err
		}
		p.client = cp
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			cp.Run(g.ctx)
		}()
	}
	g.wg.Add(3)
	go g.readTun()
	go g.probeLoop()
	go g.healthTimer()
	if addr := g.cfg.Metrics.Address; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics on %s: %w", addr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", g.MetricsHandler())
		g.metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = g.metricsServer.Serve(ln) }()
	}
	return g.startInterconnect()
}

func (g *Gateway) isPeer(site string) bool {
	for _, p := range g.cfg.Peers {
		if p.Site == site {
			return true
		}
	}
	return false
}

func (g *Gateway) openXSKs(ifname string) error {
	ifindex, queues, err := rxQueues(ifname)
	if err != nil {
		return err
	}
	for q := 0; q < queues; q++ {
		s, err := xsk.Open(xsk.Config{Ifindex: ifindex, Queue: q})
		if err != nil {
			return fmt.Errorf("queue %d: %w", q, err)
		}
		g.xsks = append(g.xsks, s)
		if err := s.Register(g.dp.XSKMap()); err != nil {
			return fmt.Errorf("queue %d: %w", q, err)
		}
		g.wg.Add(1)
		go g.readXSK(s)
	}
	return nil
}

// tunnelEvent turns the tunnel's events into the product's and queues the
// path state change; it runs on tunnel goroutines and must not block.
func (g *Gateway) tunnelEvent(e tunnel.Event) {
	switch ev := e.(type) {
	case tunnel.Connect:
		g.queue(func() { g.pathUp(ev.PathInfo, ev.Time) })
	case tunnel.Disconnect:
		g.queue(func() { g.pathDown(ev.PathInfo, ev.Time, ev.Reason) })
	case tunnel.AuthFailure:
		g.bus.Publish(events.Event{Time: ev.Time, Type: events.PeerAuthFailure, Site: ev.Site, Link: g.linkName(ev.Link), Remote: ev.Remote.String(), Reason: ev.Reason.Error()})
	case tunnel.HandshakeFailure:
		g.counters.handshakeFailures.Add(1)
		g.queue(func() {
			if p := g.findPath(ev.PathInfo, false); p != nil {
				p.lastError = ev.Reason.Error()
			}
		})
	}
}

func (g *Gateway) queue(fn func()) {
	select {
	case g.changes <- fn:
	case <-g.ctx.Done():
	}
}

// applyChanges runs queued state changes one at a time.
func (g *Gateway) applyChanges() {
	defer g.wg.Done()
	for {
		select {
		case fn := <-g.changes:
			g.mu.Lock()
			fn()
			g.mu.Unlock()
		case <-g.ctx.Done():
			return
		}
	}
}

// linkName maps an interface name (what tunnel events carry) to the WAN
// link's configured name.
func (g *Gateway) linkName(ifname string) string {
	for _, l := range g.cfg.WAN {
		if l.Interface == ifname {
			return l.Name
		}
	}
	return ifname
}

// findPath finds the path an event is about: dialers by configured
// endpoint, listeners by local link, site and remote address (its port
// is the peer's ephemeral one). With onlyDown, a listener-side match
// must be a path that is not up yet.
func (g *Gateway) findPath(info tunnel.PathInfo, onlyDown bool) *path {
	link := g.linkName(info.Link)
	var fallback *path
	for _, p := range g.paths {
		if p.link.Name != link || (info.Site != "" && p.site != info.Site) {
			continue
		}
		if p.dialer && p.endpoint == info.Remote {
			return p
		}
		if !p.dialer {
			if p.endpoint.Addr() == info.Remote.Addr() && (!onlyDown || !p.up || p.remote == info.Remote) {
				return p
			}
			if p.remote == info.Remote {
				return p
			}
			if fallback == nil && !p.up {
				fallback = p // behind NAT: any free path of that site on that link
			}
		}
	}
	return fallback
}

func (g *Gateway) pathUp(info tunnel.PathInfo, at time.Time) {
	p := g.findPath(info, true)
	if p == nil {
		g.bus.Publish(events.Event{Time: at, Type: events.OffCloudConnect, Site: info.Site, Link: g.linkName(info.Link), Remote: info.Remote.String(), Reason: "no configured path matches; closing"})
		return
	}
	p.up, p.since, p.remote, p.lastError = true, at, info.Remote, ""
	if !p.dialer {
		for _, ln := range g.listeners {
			if s := ln.Session(info.Remote); s != nil {
				p.session = s
			}
		}
	}
	p.prober.Reset(at)
	g.apply(g.sel.Connected(p.id, true, at, ""))
	g.bus.Publish(events.Event{Time: at, Type: events.OffCloudConnect, Site: p.site, Link: p.link.Name, Remote: info.Remote.String(),
		Detail: map[string]string{"path": fmt.Sprint(p.id)}})
}

func (g *Gateway) pathDown(info tunnel.PathInfo, at time.Time, reason error) {
	p := g.findPath(info, false)
	if p == nil || !p.up {
		return
	}
	// State first: flows on the path re-pick at once, before the tables
	// are rebuilt.
	p.up, p.since, p.session = false, at, nil
	if reason != nil {
		p.lastError = reason.Error()
	}
	why := "closed"
	if reason != nil {
		why = reason.Error()
	}
	g.apply(g.sel.Connected(p.id, false, at, why))
	g.bus.Publish(events.Event{Time: at, Type: events.OffCloudDisconnect, Site: p.site, Link: p.link.Name, Remote: info.Remote.String(), Reason: why,
		Detail: map[string]string{"path": fmt.Sprint(p.id)}})
}

// send hands a frame to a path's session.
func (g *Gateway) send(id uint16, t tunnel.FrameType, payload []byte) error {
	if id == 0 || int(id) > len(g.paths) {
		return errNoPath
	}
	p := g.paths[id-1]
	if p.dialer {
		return p.client.Send(t, payload)
	}
	g.mu.RLock()
	s := p.session
	g.mu.RUnlock()
	if s == nil {
		return errNoPath
	}
	return s.Send(t, payload)
}

var errNoPath = errors.New("path is down")

// Close stops everything and releases what the gateway holds. XDP stays
// attached (pinned); paths are marked down so the kernel stops choosing
// them.
func (g *Gateway) Close() error {
	var errs []error
	g.closeOnce.Do(func() {
		// First: BGP withdraws its learned routes from the data path.
		errs = append(errs, g.stopInterconnect())
		g.cancel() // the AF_XDP readers close their sockets as they stop
		if g.metricsServer != nil {
			errs = append(errs, g.metricsServer.Close())
		}
		for _, ln := range g.listeners {
			errs = append(errs, ln.Close())
		}
		if g.tun != nil {
			errs = append(errs, g.tun.Close())
		}
		for _, c := range []net.PacketConn{g.icmp4, g.icmp6} {
			if c != nil {
				errs = append(errs, c.Close())
			}
		}
		g.wg.Wait()
		if g.dp != nil {
			for _, p := range g.paths {
				_ = g.dp.SetPath(p.id, g.pathInfo(p, false))
				for li := 0; li <= len(g.cfg.WAN); li++ {
					_ = g.dp.DeleteSiteTable(p.siteID, uint8(li))
				}
			}
			errs = append(errs, g.dp.Close())
		}
	})
	return errors.Join(errs...)
}
