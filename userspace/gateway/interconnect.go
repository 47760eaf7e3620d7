package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/smtp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/xwan-dev/xwan/userspace/bgp"
	"github.com/xwan-dev/xwan/userspace/config"
	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/metrics"
	"github.com/xwan-dev/xwan/userspace/monitor"
	"github.com/xwan-dev/xwan/userspace/notify"
	"github.com/xwan-dev/xwan/userspace/policy"
)

// The cloud interconnect (docs/bgp.md): xwand runs the BGP neighbours, the
// LAN monitor and the notifier of the bgp:, lan_monitoring: and
// notifications: sections. Their events become events on the gateway's
// bus and notifications; their metrics go on the gateway's registry;
// learned best routes go to the kernel (userspace/bgp does that), to the
// LAN program's destination map and to the Go model, as local
// destinations: the kernel forwards them to the BGP next hop.

// Event types of the interconnect that userspace/events does not list.
const (
	BGPNeighborRestarted events.Type = "bgp_neighbor_restarted"
	BGPAdvertiseLimit    events.Type = "bgp_advertise_limit"
)

// interconnect is the gateway's state for the above; the zero value is
// the state before Start (or without any of the sections).
type interconnect struct {
	regOnce sync.Once
	reg     *prometheus.Registry

	log      *slog.Logger
	bgp      *bgp.Server
	monitor  *monitor.Monitor
	notifier *notify.Notifier

	// configured holds the prefixes of the configuration (LAN and peers):
	// they keep their destination entries whatever BGP learns.
	configured map[netip.Prefix]bool

	// learned is what the data path holds for BGP; guarded by Gateway.mu
	// like the model.
	learned map[netip.Prefix]bgp.Route
}

// registry is the gateway's Prometheus registry: the gateway's collector,
// and whatever the interconnect's libraries register into it.
func (g *Gateway) registry() *prometheus.Registry {
	g.ic.regOnce.Do(func() { g.ic.reg = metrics.NewRegistry(g) })
	return g.ic.reg
}

// startInterconnect starts the notifier, the LAN monitor and BGP, in that
// order, so that nothing they report is lost. Called at the end of Start.
func (g *Gateway) startInterconnect() error {
	ic := &g.ic
	ic.log = slog.Default().With("site", g.cfg.Site)
	ic.learned = map[netip.Prefix]bgp.Route{}
	ic.configured = map[netip.Prefix]bool{}
	for _, p := range g.cfg.LAN.Prefixes {
		ic.configured[p] = true
	}
	for _, peer := range g.cfg.Peers {
		for _, p := range peer.Prefixes {
			ic.configured[p] = true
		}
	}
	reg := g.registry()

	if chans := g.cfg.Notifications.Channels; len(chans) > 0 {
		n, err := notify.New(notifyChannels(chans), notify.Options{Logger: ic.log, Registerer: reg})
		if err != nil {
			return fmt.Errorf("notifications: %w", err)
		}
		ic.notifier = n
	}
	if targets := g.cfg.LANMonitoring.Targets; len(targets) > 0 {
		m, err := monitor.New(monitorTargets(targets), monitor.Options{Logger: ic.log, Registerer: reg, OnEvent: g.monitorEvent})
		if err != nil {
			return fmt.Errorf("lan_monitoring: %w", err)
		}
		// The sockets are opened here, in xwand's network namespace.
		if err := m.Start(g.ctx); err != nil {
			return fmt.Errorf("lan_monitoring: %w", err)
		}
		ic.monitor = m
	}
	if b := g.cfg.BGP; b != nil {
		s, err := bgp.New(bgpConfig(b), bgp.Options{
			Logger: ic.log, Registerer: reg, OnEvent: g.bgpEvent,
			Sinks: []bgp.RouteSink{dataPathSink{g}},
		})
		if err != nil {
			return fmt.Errorf("bgp: %w", err)
		}
		ctx := context.Background()
		if err := s.SetNetworks(ctx, advertisedNetworks(g.cfg)); err != nil {
			return fmt.Errorf("bgp: %w", err)
		}
		if err := s.Start(ctx); err != nil {
			return err
		}
		ic.bgp = s
	}
	return nil
}

// stopInterconnect stops BGP first (its learned routes leave the kernel
// and the data path), then the monitor, then the notifier, which delivers
// what it has gathered within a few seconds. Called at the start of Close;
// the stopped parts stay in place and answer "not running".
func (g *Gateway) stopInterconnect() error {
	ic := &g.ic
	var errs []error
	if ic.bgp != nil {
		errs = append(errs, ic.bgp.Close())
	}
	if ic.monitor != nil {
		errs = append(errs, ic.monitor.Close())
	}
	if ic.notifier != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, ic.notifier.Close(ctx))
		cancel()
	}
	return errors.Join(errs...)
}

// --- configuration -> libraries ------------------------------------------

// bgpConfig maps the configuration's bgp: section (defaults applied) onto
// the library's Config.
func bgpConfig(b *config.BGP) bgp.Config {
	c := bgp.Config{
		ASN:             b.ASN,
		RouterID:        b.RouterID,
		ListenPort:      b.ListenPort,
		ListenAddresses: slices.Clone(b.ListenAddresses),
		Kernel:          bgp.KernelConfig{Install: b.Kernel.Install, Table: b.Kernel.Table, Priority: b.Kernel.Priority},
	}
	for _, n := range b.Neighbors {
		prepend := n.Prepend
		if prepend == 0 {
			prepend = bgp.NoPrepend // the file's 0 is "none", the library's "default"
		}
		c.Neighbors = append(c.Neighbors, bgp.Neighbor{
			Name:               n.Name,
			PeerAddress:        n.PeerAddress,
			PeerASN:            n.PeerASN,
			LocalASN:           n.LocalASN,
			LocalAddress:       n.LocalAddress,
			Password:           n.Password,
			HoldTime:           n.HoldTime,
			Keepalive:          n.Keepalive,
			ConnectRetry:       n.ConnectRetry,
			Metric:             n.Metric,
			Prepend:            prepend,
			AdvertiseDefault:   n.AdvertiseDefault,
			AdvertiseAll:       n.AdvertiseAll,
			AcceptDynamic:      n.AcceptDynamic,
			MaxReceived:        n.MaxReceived,
			PrefixLimitRestart: bgp.RestartPolicy{Manual: n.PrefixLimitRestart.Manual, After: n.PrefixLimitRestart.After},
			MaxAdvertised:      n.MaxAdvertised,
		})
	}
	return c
}

// advertisedNetworks is what advertise_all neighbours are sent: this
// site's LAN prefixes and, with advertise_mesh, the other sites'.
func advertisedNetworks(c *config.Config) []netip.Prefix {
	out := slices.Clone(c.LAN.Prefixes)
	if c.BGP != nil && c.BGP.AdvertiseMesh {
		for _, p := range c.Peers {
			out = append(out, p.Prefixes...)
		}
	}
	return out
}

func monitorTargets(ts []config.MonitorTarget) []monitor.Target {
	out := make([]monitor.Target, 0, len(ts))
	for _, t := range ts {
		out = append(out, monitor.Target{
			Name: t.Name, Address: t.Address, Source: t.Source, Interval: t.Interval, Timeout: t.Timeout,
			Window: t.Window, LossPercent: t.LossPercent, DownAfter: t.DownAfter, UpAfter: t.UpAfter,
		})
	}
	return out
}

var frequencies = map[config.Frequency]notify.Frequency{
	config.Immediate: notify.Immediate, config.Hourly: notify.Hourly, config.Daily: notify.Daily, config.Weekly: notify.Weekly,
}

func notifyChannels(cs []config.NotifyChannel) []notify.Channel {
	out := make([]notify.Channel, 0, len(cs))
	for _, c := range cs {
		kinds := map[string]bool{}
		for _, e := range c.Events {
			kinds[string(e)] = true
		}
		ch := notify.Channel{
			Name:      c.Name,
			Frequency: frequencies[c.Frequency],
			Match:     func(m notify.Message) bool { return kinds[m.Kind] },
		}
		switch {
		case c.Webhook != nil:
			h := http.Header{}
			for k, v := range c.Webhook.Headers {
				h.Set(k, v)
			}
			ch.Sender = &notify.Webhook{URL: c.Webhook.URL, Header: h}
		case c.Email != nil:
			e := &notify.Email{Server: c.Email.Server, From: c.Email.From, To: slices.Clone(c.Email.To), RequireTLS: c.Email.RequireTLS}
			if c.Email.Username != "" {
				host, _, _ := strings.Cut(c.Email.Server, ":")
				e.Auth = smtp.PlainAuth("", c.Email.Username, c.Email.Password, host)
			}
			ch.Sender = e
		}
		out = append(out, ch)
	}
	return out
}

// --- events -----------------------------------------------------------------

// publish puts an interconnect event on the bus and, unless quiet, hands
// it to the notifier under key with summary. Neither blocks.
func (g *Gateway) publish(e events.Event, key, summary string, quiet bool) {
	e = g.bus.Publish(e)
	if n := g.ic.notifier; n != nil && !quiet {
		n.Notify(notify.Message{Time: e.Time, Kind: string(e.Type), Key: key, Summary: summary})
	}
}

// bgpEvent runs on the BGP server's event goroutine.
func (g *Gateway) bgpEvent(e bgp.Event) {
	switch ev := e.(type) {
	case bgp.SessionUp:
		g.publish(events.Event{Time: ev.Time, Type: events.BGPSessionUp, Remote: ev.Peer.String(),
			Detail: map[string]string{"neighbor": ev.Neighbor, "peer_asn": strconv.FormatUint(uint64(ev.PeerASN), 10)}},
			ev.Key(), ev.Summary(), false)
	case bgp.SessionDown:
		d := map[string]string{"neighbor": ev.Neighbor}
		if ev.PrefixLimit {
			d["prefix_limit"] = "true"
		}
		g.publish(events.Event{Time: ev.Time, Type: events.BGPSessionDown, Remote: ev.Peer.String(), Reason: ev.Reason, Detail: d},
			ev.Key(), ev.Summary(), false)
	case bgp.RoutesChanged:
		for _, batch := range []struct {
			t      events.Type
			verb   string
			routes []bgp.Route
		}{{events.BGPRoutesAdded, "added", ev.Added}, {events.BGPRoutesWithdrawn, "withdrawn", ev.Withdrawn}} {
			if len(batch.routes) == 0 {
				continue
			}
			list := routeList(batch.routes)
			g.publish(events.Event{Time: ev.Time, Type: batch.t,
				Detail: map[string]string{"count": strconv.Itoa(len(batch.routes)), "routes": list}},
				ev.Key(), fmt.Sprintf("BGP routes %s (%d): %s", batch.verb, len(batch.routes), list), false)
		}
	case bgp.PrefixLimitExceeded:
		d := map[string]string{"neighbor": ev.Neighbor, "limit": strconv.FormatUint(uint64(ev.Limit), 10)}
		if ev.Manual {
			d["restart"] = "manual"
		} else {
			d["restart_at"] = ev.RestartAt.Format(time.RFC3339)
		}
		g.publish(events.Event{Time: ev.Time, Type: events.BGPPrefixLimit, Remote: ev.Peer.String(), Reason: ev.Summary(), Detail: d},
			ev.Key(), ev.Summary(), false)
	case bgp.NeighborRestarted:
		by := "restart policy"
		if ev.Operator {
			by = "operator"
		}
		g.publish(events.Event{Time: ev.Time, Type: BGPNeighborRestarted, Reason: ev.Summary(),
			Detail: map[string]string{"neighbor": ev.Neighbor, "by": by}}, ev.Key(), ev.Summary(), true)
	case bgp.AdvertiseLimit:
		g.publish(events.Event{Time: ev.Time, Type: BGPAdvertiseLimit, Reason: ev.Summary(),
			Detail: map[string]string{"neighbor": ev.Neighbor, "count": strconv.Itoa(ev.Count), "limit": strconv.Itoa(ev.Limit),
				"suppressed": strconv.Itoa(ev.Suppressed)}}, ev.Key(), ev.Summary(), true)
	}
}

// routeList is "P via NH (neighbor), ..." with at most 20 routes.
func routeList(rs []bgp.Route) string {
	const shown = 20
	var b strings.Builder
	for i, r := range rs {
		if i == shown {
			fmt.Fprintf(&b, " (+%d more)", len(rs)-shown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s via %s", r.Prefix, r.NextHop)
		if r.Neighbor != "" {
			fmt.Fprintf(&b, " (%s)", r.Neighbor)
		}
	}
	return b.String()
}

// monitorEvent runs on a probing goroutine. The first verdict about a
// target that is up is an event, not a notification: nothing changed.
func (g *Gateway) monitorEvent(ev monitor.Event) {
	t := events.LANMonitorUp
	if ev.State == monitor.StateDown {
		t = events.LANMonitorDown
	}
	d := map[string]string{"target": ev.Target, "previous": string(ev.Previous)}
	if ev.LastResult.Reason != "" {
		d["last_probe"] = ev.LastResult.Reason
	}
	quiet := ev.Previous == monitor.StateUnknown && ev.State == monitor.StateUp
	g.publish(events.Event{Time: ev.Time, Type: t, Remote: ev.Address.String(), Reason: ev.Reason, Detail: d},
		ev.Key(), ev.Summary(), quiet)
}

// --- learned routes -> data path ---------------------------------------------

// dataPathSink puts learned best routes in the LAN program's destination
// map and the Go model as local destinations (the kernel routes them to
// the BGP next hop). Prefixes of the configuration keep their entries.
type dataPathSink struct{ g *Gateway }

var learnedDest = policy.Dest{Site: 1, Kind: policy.DestLocal}

func (s dataPathSink) RouteAdded(r bgp.Route) error {
	g := s.g
	if g.ic.configured[r.Prefix] {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, had := g.ic.learned[r.Prefix]
	g.ic.learned[r.Prefix] = r
	if had {
		return nil // a new next hop: the kernel's business, the entry stays
	}
	if err := g.dp.SetDest(r.Prefix, learnedDest); err != nil {
		delete(g.ic.learned, r.Prefix)
		return fmt.Errorf("destination map %s: %w", r.Prefix, err)
	}
	g.model.SetDest(r.Prefix, learnedDest)
	return nil
}

func (s dataPathSink) RouteWithdrawn(r bgp.Route) error {
	g := s.g
	if g.ic.configured[r.Prefix] {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, had := g.ic.learned[r.Prefix]; !had {
		return nil
	}
	delete(g.ic.learned, r.Prefix)
	g.model.DeleteDest(r.Prefix)
	if err := g.dp.DeleteDest(r.Prefix); err != nil {
		return fmt.Errorf("destination map %s: %w", r.Prefix, err)
	}
	return nil
}
