package config

import (
	"net/netip"
	"slices"
	"time"

	"github.com/xwan-dev/xwan/userspace/policy"
)

// Role of a gateway.
type Role string

const (
	RoleEdge Role = "edge"
	RoleHub  Role = "hub"
)

// Precedence of a WAN link, as in the product: 1 active, 2 passive,
// 3 last resort (never carries off-cloud traffic).
type Precedence int

const (
	Active     Precedence = 1
	Passive    Precedence = 2
	LastResort Precedence = 3
)

// Config is one gateway's configuration.
type Config struct {
	File string // the file it was read from, for messages

	Site string // this site's name (pki.ValidateSiteName rules)
	Role Role   // edge (default) or hub

	LAN   LAN
	WAN   []WANLink
	Peers []Peer
	Hub   string // name of the hub site among Peers; empty: no hub

	Tunnel  Tunnel
	Rules   []policy.Rule // in order, first match wins
	Default policy.Action // for remote traffic no rule matches (default: cloud with a hub, else off-cloud)

	Certificates Certificates
	API          API
	Metrics      Metrics
	BPF          BPF

	Health Health // path health thresholds and timers (health.go)

	// Cloud interconnect (interconnect.go).
	BGP           *BGP // nil: no bgp: section
	LANMonitoring LANMonitoring
	Notifications Notifications
}

// LAN is the site's inside.
type LAN struct {
	Interfaces []string       // XDP attaches here
	Prefixes   []netip.Prefix // this site's networks
}

// WANLink is one Internet link.
type WANLink struct {
	Name          string     // used by rules (preferred link) and in events
	Interface     string     // the Linux interface
	Address       netip.Addr // tunnel source address; zero: the interface's first address
	Precedence    Precedence // default Active
	BandwidthUp   uint64     // bits per second, for active/active weights; > 0 unless LastResort
	BandwidthDown uint64
	OffCloud      bool           // default true; false (forced) for LastResort
	Public        netip.AddrPort // optional static public IP and port (NAT)
}

// Peer is another site of the mesh and how to reach it.
type Peer struct {
	Site     string
	Prefixes []netip.Prefix // may be empty
	Links    []PeerLink     // empty: endpoints are learnt from the hub (or, on a hub, when the edge dials in)
}

// PeerLink is one endpoint of a peer (one of its WAN links).
type PeerLink struct {
	Name     string
	Endpoint netip.AddrPort
}

// Tunnel holds the settings of the DTLS mesh.
type Tunnel struct {
	Port          uint16        // UDP port the WAN links listen on (default 4754)
	Keepalive     time.Duration // default 10s, must be < 25s
	MSSClamp      bool          // clamp TCP MSS on SYNs into a tunnel (default true)
	ProbeInterval time.Duration // default 300ms
	RekeyInterval time.Duration // new keys by a new handshake this often (default 10m, 1s to 24h)
}

// Certificates are the mesh PKI files (see userspace/pki). Paths are
// clean, and relative ones in the file are joined to its directory.
type Certificates struct {
	CA   string
	Cert string
	Key  string
}

// API is the local control socket.
type API struct {
	Socket string // default /run/xwan/xwand.sock; relative to the config file's directory
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Address string // host:port; empty: no metrics endpoint
}

// BPF settings.
type BPF struct {
	PinRoot string // absolute; default /sys/fs/bpf/xwan
}

// Ids. The kernel maps number sites and local links; these numbers are
// positions in this file (this site 1, peers 2.. in file order; WAN links
// 1.. in file order). They are local to this gateway: two gateways number
// the same site differently, so ids never cross the wire (peers name each
// other by site name, as in their certificates).

// Topology names the sites and links rules may refer to, with their ids.
func (c *Config) Topology() policy.Topology {
	t := policy.Topology{Sites: map[string]uint16{}, Links: map[string]uint8{}}
	for _, s := range c.siteNames() {
		if id := c.SiteID(s); id != 0 {
			t.Sites[s] = id
		}
	}
	for _, w := range c.WAN {
		if id := c.LinkID(w.Name); id != 0 {
			t.Links[w.Name] = id
		}
	}
	return t
}

func (c *Config) siteNames() []string {
	names := []string{c.Site}
	for _, p := range c.Peers {
		names = append(names, p.Site)
	}
	return names
}

// SiteID is the id of a site (this one or a peer), 0 if there is none.
func (c *Config) SiteID(name string) uint16 {
	if name == "" {
		return 0
	}
	for i, s := range c.siteNames() {
		if s == name {
			if i+1 >= policy.MaxSites {
				return 0
			}
			return uint16(i + 1)
		}
	}
	return 0
}

// LinkID is the id of a local WAN link, 0 if there is none.
func (c *Config) LinkID(name string) uint8 {
	if name == "" {
		return 0
	}
	for i, w := range c.WAN {
		if w.Name == name {
			if i+1 >= policy.MaxLinks {
				return 0
			}
			return uint8(i + 1)
		}
	}
	return 0
}

// RuleSet is the rules and default action, for policy.Compile and the Go
// classifier. The rule slice is a copy: compiling never changes the config.
func (c *Config) RuleSet() *policy.RuleSet {
	return &policy.RuleSet{Rules: slices.Clone(c.Rules), Default: c.Default}
}
