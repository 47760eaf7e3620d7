// Package gateway is xwand's core: it turns a configuration into a running
// site gateway. It loads and attaches the XDP programs, fills their maps,
// keeps one DTLS path per (local WAN link, remote endpoint), moves packets
// between the LAN (AF_XDP), the tunnels and the tunnel device, and reports
// what happens as events.
//
// Goroutines: one per AF_XDP socket (LAN -> tunnel), one reading the
// tunnel device (the gateway's own traffic -> tunnel), one per client path
// and per peer session (tunnel -> device, owned by userspace/tunnel), and
// one that applies path state changes (state), so kernel maps and the Go
// model change in one place and in order.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/xwan-dev/xwan/loader"
	"github.com/xwan-dev/xwan/userspace/config"
	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/pathsel"
	"github.com/xwan-dev/xwan/userspace/pki"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/tunnel"
	"github.com/xwan-dev/xwan/userspace/xsk"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// TunName is the tunnel device every gateway creates.
const TunName = "xwan0"

// tunOffset is the headroom the tunnel device needs in front of packets
// (its virtio-net header).
const tunOffset = 16

// Gateway is a running site gateway.
type Gateway struct {
	cfg      *config.Config
	topo     policy.Topology
	dp       *loader.Datapath
	bus      *events.Bus
	identity tunnel.Identity
	started  time.Time

	tun      wgtun.Device
	innerMTU int
	icmp4    net.PacketConn // raw sockets for ICMP errors to LAN hosts
	icmp6    net.PacketConn
	links    map[string]netip.Addr // WAN link name -> tunnel source address

	paths   []*path // by id-1; the slice never changes after New
	changes chan func()

	mu         sync.RWMutex // guards model and the state of paths
	model      *policy.Model
	generation uint32

	listeners []*tunnel.Listener
	xsks      []*xsk.Socket
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	counters counters

	metricsOnce    sync.Once
	metricsHandler http.Handler
	metricsServer  *http.Server
}

// Options tune a Gateway.
type Options struct {
	EventLog  io.Writer // JSON lines; nil: none
	KeepEvent int       // events kept for the API (default 1000)
}

// New sets the gateway up from a validated configuration: nothing runs
// until Start. On error everything it did is undone.
func New(cfg *config.Config, opts Options) (g *Gateway, err error) {
	if opts.KeepEvent == 0 {
		opts.KeepEvent = 1000
	}
	g = &Gateway{
		cfg:     cfg,
		topo:    cfg.Topology(),
		bus:     events.New(opts.KeepEvent, opts.EventLog),
		started: time.Now(),
		links:   map[string]netip.Addr{},
		changes: make(chan func(), 256),
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if len(cfg.LAN.Interfaces) != 1 {
		// The LAN program's XSKMAP is keyed by RX queue alone, so two LAN
		// interfaces would share sockets.
		return nil, fmt.Errorf("%s: lan.interfaces: xwand supports exactly one LAN interface for now (use VLAN sub-interfaces on one trunk), got %d", cfg.File, len(cfg.LAN.Interfaces))
	}
	if err := g.loadIdentity(); err != nil {
		return nil, err
	}
	if err := g.resolveLinks(); err != nil {
		return nil, err
	}
	g.planPaths()
	if g.dp, err = loader.Open(loader.Options{PinRoot: cfg.BPF.PinRoot}); err != nil {
		return nil, err
	}
	if err := g.openTun(); err != nil {
		return nil, err
	}
	if g.icmp4, err = net.ListenPacket("ip4:icmp", "0.0.0.0"); err != nil {
		return nil, fmt.Errorf("raw ICMP socket: %w", err)
	}
	// IPv6 may be disabled on the host: then there is nothing to answer.
	g.icmp6, _ = net.ListenPacket("ip6:ipv6-icmp", "::")
	if err := g.programKernel(); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Gateway) loadIdentity() error {
	c := g.cfg.Certificates
	cert, err := pki.LoadSiteKeyPair(c.Cert, c.Key)
	if err != nil {
		return fmt.Errorf("site certificate: %w", err)
	}
	pool, err := pki.LoadCAPool(c.CA)
	if err != nil {
		return fmt.Errorf("mesh CA: %w", err)
	}
	g.identity = tunnel.Identity{Certificate: cert, Roots: pool}
	return nil
}

// path is one (local WAN link, remote endpoint) pair.
type path struct {
	id       uint16
	site     string
	siteID   uint16
	link     config.WANLink
	linkID   uint8
	endpoint netip.AddrPort // the peer link's configured endpoint
	dialer   bool           // this side dials; the other listens

	client *tunnel.Path // set once for dialers

	// Guarded by Gateway.mu.
	up        bool
	since     time.Time
	remote    netip.AddrPort
	session   *tunnel.Session // listener side
	lastError string
}

// planPaths lists the paths: every off-cloud link of ours to every link of
// every peer. The site whose name sorts first dials, so each pair of
// endpoints has exactly one session.
func (g *Gateway) planPaths() {
	for _, peer := range g.cfg.Peers {
		for li, l := range g.cfg.WAN {
			if !l.OffCloud {
				continue
			}
			for _, pl := range peer.Links {
				g.paths = append(g.paths, &path{
					id:       uint16(len(g.paths) + 1),
					site:     peer.Site,
					siteID:   g.topo.Sites[peer.Site],
					link:     l,
					linkID:   uint8(li + 1),
					endpoint: pl.Endpoint,
					dialer:   g.cfg.Site < peer.Site,
					since:    time.Now(),
				})
			}
		}
	}
}

// programKernel fills the maps: settings, destinations, rules, the WAN
// guard and every path (down until its session comes up).
func (g *Gateway) programKernel() error {
	cfg := g.cfg
	settings := policy.Settings{LocalSite: 1, HubSite: g.topo.Sites[cfg.Hub]}
	dests := map[netip.Prefix]policy.Dest{}
	for _, p := range cfg.LAN.Prefixes {
		dests[p] = policy.Dest{Site: 1, Kind: policy.DestLocal}
	}
	for _, peer := range cfg.Peers {
		for _, p := range peer.Prefixes {
			dests[p] = policy.Dest{Site: g.topo.Sites[peer.Site], Kind: policy.DestMesh}
		}
	}
	rs := cfg.RuleSet()
	compiled, err := policy.Compile(rs, g.topo)
	if err != nil {
		return fmt.Errorf("%s: rules: %w", cfg.File, err)
	}
	if err := g.dp.SetSettings(settings); err != nil {
		return err
	}
	if err := g.dp.SetDests(dests); err != nil {
		return err
	}
	for _, p := range g.paths {
		if err := g.dp.SetPath(p.id, g.pathInfo(p, false)); err != nil {
			return err
		}
	}
	for _, peer := range cfg.Peers {
		if err := g.writeTables(g.topo.Sites[peer.Site]); err != nil {
			return err
		}
	}
	if g.generation, err = g.dp.ApplyRules(compiled); err != nil {
		return err
	}
	if err := g.dp.SetTunnelPort(cfg.Tunnel.Port); err != nil {
		return err
	}
	for _, peer := range cfg.Peers {
		for _, l := range peer.Links {
			if err := g.dp.AllowPeer(netip.AddrPortFrom(l.Endpoint.Addr(), 0), g.topo.Sites[peer.Site]); err != nil {
				return err
			}
		}
	}
	m := policy.NewModel()
	m.Rules, m.Topo, m.Settings, m.Generation = rs, g.topo, settings, g.generation
	for p, d := range dests {
		m.SetDest(p, d)
	}
	g.model = m
	return nil
}

func (g *Gateway) pathInfo(p *path, up bool) loader.PathInfo {
	info := loader.PathInfo{State: loader.PathDown, LinkId: p.linkID, SiteId: p.siteID, RemotePort: p.endpoint.Port()}
	if up {
		info.State = loader.PathUp
	}
	a, _ := policy.Mapped(netip.PrefixFrom(p.endpoint.Addr(), p.endpoint.Addr().BitLen()))
	info.RemoteAddr = a
	if p.site == g.cfg.Hub {
		info.Hub = 1
	}
	return info
}

// usable returns the paths to a site that may carry new flows: the up
// paths on active links, or, when none is up, those on passive links.
func (g *Gateway) usable(siteID uint16) []*path {
	var active, passive []*path
	for _, p := range g.paths {
		if p.siteID != siteID || !p.up {
			continue
		}
		switch p.link.Precedence {
		case config.Active:
			active = append(active, p)
		case config.Passive:
			passive = append(passive, p)
		}
	}
	if len(active) > 0 {
		return active
	}
	return passive
}

// writeTables rebuilds a site's Maglev tables (all links, and per link)
// from its usable paths, weighted by link bandwidth; called with mu held
// or before Start.
func (g *Gateway) writeTables(siteID uint16) error {
	use := g.usable(siteID)
	backends := func(linkID uint8) []pathsel.Backend {
		var out []pathsel.Backend
		for _, p := range use {
			if linkID == 0 || p.linkID == linkID {
				out = append(out, pathsel.Backend{Path: p.id, Weight: p.link.BandwidthUp})
			}
		}
		return out
	}
	tables := map[uint8][]uint16{}
	for li := range g.cfg.WAN {
		tables[uint8(li+1)] = nil
	}
	tables[0] = nil
	var errs []error
	for linkID := range tables {
		b := backends(linkID)
		if len(b) == 0 {
			errs = append(errs, g.dp.DeleteSiteTable(siteID, linkID))
			if g.model != nil {
				delete(g.model.Tables, policy.SiteLink{Site: siteID, Link: linkID})
			}
			continue
		}
		t := pathsel.Maglev(b)
		errs = append(errs, g.dp.SetSiteTable(siteID, linkID, t))
		if g.model != nil {
			g.model.Tables[policy.SiteLink{Site: siteID, Link: linkID}] = t
		}
	}
	return errors.Join(filterNotExist(errs)...)
}

func filterNotExist(errs []error) []error {
	var out []error
	for _, e := range errs {
		if e != nil && !errors.Is(e, errNotExist) {
			out = append(out, e)
		}
	}
	return out
}

// Events returns the gateway's event bus.
func (g *Gateway) Events() *events.Bus { return g.bus }

// Datapath returns the loaded BPF data path.
func (g *Gateway) Datapath() *loader.Datapath { return g.dp }

func (g *Gateway) sortedPaths() []*path {
	out := append([]*path(nil), g.paths...)
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
