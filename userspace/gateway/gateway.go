// Package gateway is xwand's core: it turns a configuration into a running
// site gateway. It loads and attaches the XDP programs, fills their maps,
// keeps one DTLS path per (local WAN link, remote endpoint), moves packets
// between the LAN (AF_XDP), the tunnels and the tunnel device, and reports
// what happens as events.
//
// Goroutines: one per AF_XDP socket (LAN -> tunnel), one reading the
// tunnel device (the gateway's own traffic -> tunnel), one reader per
// tunnel socket, i.e. per client path and per listener (tunnel -> device,
// owned by userspace/tunnel), each running its batches to completion
// (fastpath.go), and one that applies path state changes (state), so
// kernel maps and the Go model change in one place and in order.
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
	"github.com/xwan-dev/xwan/userspace/probe"
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
	sel     *pathsel.Selector // owned by the state goroutine

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

	ic interconnect // BGP, LAN monitoring, notifications (interconnect.go)
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
	if err := g.newSelector(); err != nil {
		return nil, err
	}
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

	client *tunnel.Path  // set once for dialers
	prober *probe.Prober // safe for concurrent use
	// probeDown is the prober's last verdict; only probeLoop touches it.
	probeDown bool

	// Guarded by Gateway.mu.
	up        bool
	since     time.Time
	remote    netip.AddrPort
	session   *tunnel.Session // listener side
	lastError string
	health    string // the selector's state: up, degraded, down
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

// writeTables writes a site's Maglev tables as the selector has them (one
// for all links, and one per local link for rules with a preferred link),
// deleting the ones it no longer has; called with mu held or before Start.
func (g *Gateway) writeTables(siteID uint16) error {
	tables := g.sel.Tables(siteID)
	var errs []error
	for _, linkID := range g.tableLinks(siteID) {
		key := policy.SiteLink{Site: siteID, Link: linkID}
		t, ok := tables[linkID]
		if !ok {
			errs = append(errs, g.dp.DeleteSiteTable(siteID, linkID))
			if g.model != nil {
				delete(g.model.Tables, key)
			}
			continue
		}
		errs = append(errs, g.dp.SetSiteTable(siteID, linkID, t))
		if g.model != nil {
			g.model.Tables[key] = t
		}
	}
	return errors.Join(filterNotExist(errs)...)
}

// tableLinks lists every table a site may have: all links (0) and each
// configured WAN link.
func (g *Gateway) tableLinks(siteID uint16) []uint8 {
	links := []uint8{0}
	for li := range g.cfg.WAN {
		links = append(links, uint8(li+1))
	}
	return links
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
