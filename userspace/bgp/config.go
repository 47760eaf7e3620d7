package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Defaults applied to zero values.
const (
	DefaultHoldTime           = 90 * time.Second
	DefaultConnectRetry       = 5 * time.Second // gobgp's own default is 120 s: far too slow for failover
	DefaultMetric             = 100
	DefaultPrepend            = 2
	DefaultPrefixLimitRestart = 5 * time.Minute
	DefaultKernelPriority     = 20  // kernel route metric; keeps clear of administrators' metric-0 routes
	MainTable                 = 254 // RT_TABLE_MAIN

	// MaxMetric bounds Neighbor.Metric so that LOCAL_PREF = 1000 - metric
	// stays positive.
	MaxMetric = 999
	// MaxPrepend bounds Neighbor.Prepend; longer paths only add noise.
	MaxPrepend = 10
	// AdvertiseWarnPercent is where the advertised-prefix cap raises its
	// warning event.
	AdvertiseWarnPercent = 80

	// NoHoldTime stands for an explicit hold time of 0 (no keepalives).
	// BGP allows it, but gobgp replaces a configured 0 with 90 s, so xwan
	// rejects it instead of silently running with other timers. A config
	// loader that sees an explicit 0 should pass NoHoldTime, not 0 (which
	// means "default").
	NoHoldTime time.Duration = -1
	// NoPrepend turns AS-path prepending off for a backup neighbour (MED
	// only); 0 means the default (DefaultPrepend).
	NoPrepend = -1
)

// Config is the BGP part of a gateway's configuration.
type Config struct {
	// ASN is the gateway's autonomous system number. A neighbour may
	// present another one with Neighbor.LocalASN.
	ASN uint32 `json:"asn" yaml:"asn"`
	// RouterID is the BGP identifier. Default: the first IPv4 local
	// address among the neighbours.
	RouterID netip.Addr `json:"router_id,omitzero" yaml:"router-id,omitempty"`
	// ListenPort is the TCP port to accept sessions on: 0 means 179, -1
	// means do not listen (dial out only).
	ListenPort int `json:"listen_port,omitempty" yaml:"listen-port,omitempty"`
	// ListenAddresses restricts the listener; empty means all.
	ListenAddresses []netip.Addr `json:"listen_addresses,omitempty" yaml:"listen-addresses,omitempty"`
	Neighbors       []Neighbor   `json:"neighbors" yaml:"neighbors"`
	Kernel          KernelConfig `json:"kernel" yaml:"kernel"`
}

// KernelConfig says whether and where learned best routes go into the
// kernel's routing table.
type KernelConfig struct {
	// Install programs learned best routes with netlink.
	Install bool `json:"install" yaml:"install"`
	// Table is the routing table id; 0 means main (254).
	Table int `json:"table,omitempty" yaml:"table,omitempty"`
	// Priority is the kernel route metric; 0 means DefaultKernelPriority.
	Priority int `json:"priority,omitempty" yaml:"priority,omitempty"`
}

// Neighbor is one BGP session, e.g. one ExpressRoute circuit's MSEE.
type Neighbor struct {
	// Name identifies the neighbour in events, status and metrics.
	Name        string     `json:"name" yaml:"name"`
	PeerAddress netip.Addr `json:"peer_address" yaml:"peer-address"`
	PeerASN     uint32     `json:"peer_asn" yaml:"peer-asn"`
	// LocalASN overrides Config.ASN for this session.
	LocalASN uint32 `json:"local_asn,omitempty" yaml:"local-asn,omitempty"`
	// LocalAddress is the source address of the session (on a /30 the
	// customer's address). Optional.
	LocalAddress netip.Addr `json:"local_address,omitzero" yaml:"local-address,omitempty"`
	// PeerPort is the neighbour's TCP port; 0 means 179. For labs.
	PeerPort uint16 `json:"peer_port,omitempty" yaml:"peer-port,omitempty"`
	// Password is the TCP MD5 signature key (RFC 2385; Azure's "shared
	// key"). Empty means no MD5.
	Password string `json:"password,omitempty" yaml:"password,omitempty"`

	// HoldTime: 0 means DefaultHoldTime; must be whole seconds, at least
	// 3 s. See NoHoldTime.
	HoldTime time.Duration `json:"hold_time,omitempty" yaml:"hold-time,omitempty"`
	// Keepalive: 0 means HoldTime/3; at most HoldTime/3.
	Keepalive time.Duration `json:"keepalive,omitempty" yaml:"keepalive,omitempty"`
	// ConnectRetry is the pause between connection attempts; 0 means
	// DefaultConnectRetry.
	ConnectRetry time.Duration `json:"connect_retry,omitempty" yaml:"connect-retry,omitempty"`

	// Metric ranks neighbours: lower is preferred, 0 means DefaultMetric.
	Metric int `json:"metric,omitempty" yaml:"metric,omitempty"`
	// Prepend is how many times the local AS is prepended to routes
	// advertised to this neighbour when its metric is worse than the best
	// configured metric. 0 means DefaultPrepend, NoPrepend means none.
	Prepend int `json:"prepend,omitempty" yaml:"prepend,omitempty"`

	// AdvertiseDefault advertises a default route (0.0.0.0/0 or ::/0).
	AdvertiseDefault bool `json:"advertise_default,omitempty" yaml:"advertise-default,omitempty"`
	// AdvertiseAll advertises every network given to Server.SetNetworks.
	AdvertiseAll bool `json:"advertise_all,omitempty" yaml:"advertise-all,omitempty"`
	// AcceptDynamic accepts the neighbour's routes; off means they are
	// received (and counted) but neither selected nor installed.
	AcceptDynamic bool `json:"accept_dynamic,omitempty" yaml:"accept-dynamic,omitempty"`

	// MaxReceived is the received-prefix limit; over it the session is torn
	// down (Cease, maximum number of prefixes reached). 0 means no limit.
	MaxReceived uint32 `json:"max_received,omitempty" yaml:"max-received,omitempty"`
	// PrefixLimitRestart says what happens after MaxReceived tore the
	// session down.
	PrefixLimitRestart RestartPolicy `json:"prefix_limit_restart" yaml:"prefix-limit-restart"`
	// MaxAdvertised caps the prefixes advertised to this neighbour (the
	// provider's own limit, e.g. 4000 for ExpressRoute); prefixes beyond
	// it are not advertised, and an event warns at AdvertiseWarnPercent.
	// 0 means no cap.
	MaxAdvertised int `json:"max_advertised,omitempty" yaml:"max-advertised,omitempty"`
}

// RestartPolicy is what happens after the received-prefix limit tore a
// session down. gobgp leaves such a peer idle for good; xwan re-enables it
// After the given delay, or never if Manual (then an operator calls
// Server.EnableNeighbor, e.g. `xwanctl bgp enable NAME`).
type RestartPolicy struct {
	Manual bool          `json:"manual,omitempty" yaml:"manual,omitempty"`
	After  time.Duration `json:"after,omitempty" yaml:"after,omitempty"`
}

// ParseRestartPolicy reads "manual" or a Go duration such as "30s" or
// "5m". The empty string is the default policy.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "":
		return RestartPolicy{}, nil
	case "manual":
		return RestartPolicy{Manual: true}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return RestartPolicy{}, fmt.Errorf("prefix-limit restart %q: want \"manual\" or a duration such as \"5m\"", s)
	}
	p := RestartPolicy{After: d}
	if err := p.validate(); err != nil {
		return RestartPolicy{}, err
	}
	return p, nil
}

// String is the inverse of ParseRestartPolicy.
func (p RestartPolicy) String() string {
	if p.Manual {
		return "manual"
	}
	return p.delay().String()
}

func (p RestartPolicy) delay() time.Duration {
	if p.After == 0 {
		return DefaultPrefixLimitRestart
	}
	return p.After
}

func (p RestartPolicy) validate() error {
	switch {
	case p.Manual && p.After != 0:
		return errors.New("prefix-limit restart: manual and a delay are exclusive")
	case p.After < 0:
		return fmt.Errorf("prefix-limit restart delay %s: must not be negative", p.After)
	case p.After != 0 && p.After < time.Second:
		return fmt.Errorf("prefix-limit restart delay %s: must be at least 1s", p.After)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate checks the configuration and reports every problem found, one
// per line, each naming the neighbour and the field.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := checkASN(c.ASN); err != nil {
		add("bgp: asn: %v", err)
	}
	if c.RouterID.IsValid() && (!c.RouterID.Is4() || c.RouterID.IsUnspecified()) {
		add("bgp: router-id %s: must be a non-zero IPv4 address", c.RouterID)
	}
	if c.ListenPort < -1 || c.ListenPort > 65535 {
		add("bgp: listen-port %d: must be -1 (do not listen), 0 (179) or a port number", c.ListenPort)
	}
	for _, a := range c.ListenAddresses {
		if !a.IsValid() {
			add("bgp: listen-addresses: invalid address")
		}
	}
	if t := c.Kernel.Table; t < 0 || t == 255 || t > 0xfffffffe {
		add("bgp: kernel table %d: must be 0 (main) or a table id other than 255 (local)", t)
	}
	if p := c.Kernel.Priority; p < 0 {
		add("bgp: kernel priority %d: must not be negative", p)
	}

	names := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for i := range c.Neighbors {
		n := &c.Neighbors[i]
		label := fmt.Sprintf("neighbor %q", n.Name)
		switch {
		case n.Name == "":
			label = fmt.Sprintf("neighbor #%d", i+1)
			add("bgp: %s: name: required", label)
		case !nameRE.MatchString(n.Name):
			add("bgp: %s: name: use letters, digits, '.', '_' and '-' (at most 64)", label)
		case names[n.Name]:
			add("bgp: %s: name: used twice", label)
		}
		names[n.Name] = true
		for _, err := range n.validate(c.ASN) {
			errs = append(errs, fmt.Errorf("bgp: %s: %w", label, err))
		}
		if n.PeerAddress.IsValid() {
			if other, dup := addrs[n.PeerAddress]; dup {
				add("bgp: %s: peer-address %s: already used by neighbor %q", label, n.PeerAddress, other)
			}
			addrs[n.PeerAddress] = n.Name
		}
	}
	if !c.RouterID.IsValid() && len(c.Neighbors) > 0 && !c.defaultRouterID().IsValid() {
		add("bgp: router-id: required when no neighbor has an IPv4 local-address")
	}
	return errors.Join(errs...)
}

func (n *Neighbor) validate(globalASN uint32) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch a := n.PeerAddress; {
	case !a.IsValid():
		add("peer-address: required")
	case a.IsUnspecified() || a.IsMulticast():
		add("peer-address %s: must be a unicast address", a)
	}
	if err := checkASN(n.PeerASN); err != nil {
		add("peer-asn: %v", err)
	}
	local := n.LocalASN
	if local != 0 {
		if err := checkASN(local); err != nil {
			add("local-asn: %v", err)
		}
	} else {
		local = globalASN
	}
	if n.PeerASN != 0 && n.PeerASN == local {
		add("peer-asn %d equals the local AS: only eBGP neighbours are supported", n.PeerASN)
	}
	if l := n.LocalAddress; l.IsValid() && n.PeerAddress.IsValid() && l.Is4() != n.PeerAddress.Is4() {
		add("local-address %s: not the same address family as peer-address %s", l, n.PeerAddress)
	}
	if len(n.Password) > 80 {
		add("password: %d bytes, TCP MD5 keys are at most 80", len(n.Password))
	}

	hold := n.HoldTime
	switch {
	case hold == NoHoldTime:
		add("hold-time 0: BGP allows it, but the embedded gobgp cannot run without a hold timer; use 3s or more")
	case hold < 0:
		add("hold-time %s: must not be negative", hold)
	case hold%time.Second != 0:
		add("hold-time %s: must be whole seconds", hold)
	case hold > 0 && hold < 3*time.Second:
		add("hold-time %s: must be 0 or at least 3s (RFC 4271)", hold)
	case hold > 65535*time.Second:
		add("hold-time %s: must be at most 65535s", hold)
	}
	if hold <= 0 {
		hold = DefaultHoldTime
	}
	switch ka := n.Keepalive; {
	case ka < 0:
		add("keepalive %s: must not be negative", ka)
	case ka%time.Second != 0:
		add("keepalive %s: must be whole seconds", ka)
	case ka > hold/3:
		add("keepalive %s: must be at most a third of the hold time (%s)", ka, hold)
	}
	switch cr := n.ConnectRetry; {
	case cr < 0:
		add("connect-retry %s: must not be negative", cr)
	case cr%time.Second != 0:
		add("connect-retry %s: must be whole seconds", cr)
	case cr > time.Hour:
		add("connect-retry %s: must be at most 1h", cr)
	}
	if m := n.Metric; m < 0 || m > MaxMetric {
		add("metric %d: must be between 1 and %d (0 means %d)", m, MaxMetric, DefaultMetric)
	}
	if p := n.Prepend; p < NoPrepend || p > MaxPrepend {
		add("prepend %d: must be between 1 and %d (0 means %d, -1 none)", p, MaxPrepend, DefaultPrepend)
	}
	if n.MaxAdvertised < 0 {
		add("max-advertised %d: must not be negative", n.MaxAdvertised)
	}
	if err := n.PrefixLimitRestart.validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// reserved ASNs per RFC 7607 (0), RFC 6793 (AS_TRANS) and RFC 7300 (last).
func checkASN(asn uint32) error {
	switch asn {
	case 0:
		return errors.New("required (0 is reserved)")
	case 23456:
		return errors.New("23456 is AS_TRANS, not a real AS")
	case 65535, 4294967295:
		return fmt.Errorf("%d is reserved", asn)
	}
	return nil
}

func (c *Config) defaultRouterID() netip.Addr {
	for _, n := range c.Neighbors {
		if n.LocalAddress.Is4() && !n.LocalAddress.IsUnspecified() {
			return n.LocalAddress
		}
	}
	return netip.Addr{}
}

// withDefaults returns a copy with every zero value replaced by its default.
// Call it on a valid Config.
func (c Config) withDefaults() Config {
	if !c.RouterID.IsValid() {
		c.RouterID = c.defaultRouterID()
	}
	if c.ListenPort == 0 {
		c.ListenPort = 179
	}
	if c.Kernel.Table == 0 {
		c.Kernel.Table = MainTable
	}
	if c.Kernel.Priority == 0 {
		c.Kernel.Priority = DefaultKernelPriority
	}
	ns := make([]Neighbor, len(c.Neighbors))
	for i, n := range c.Neighbors {
		if n.LocalASN == 0 {
			n.LocalASN = c.ASN
		}
		if n.HoldTime == 0 {
			n.HoldTime = DefaultHoldTime
		}
		if n.Keepalive == 0 {
			n.Keepalive = (n.HoldTime / 3).Truncate(time.Second)
		}
		if n.ConnectRetry == 0 {
			n.ConnectRetry = DefaultConnectRetry
		}
		if n.Metric == 0 {
			n.Metric = DefaultMetric
		}
		if n.Prepend == 0 {
			n.Prepend = DefaultPrepend
		}
		ns[i] = n
	}
	c.Neighbors = ns
	return c
}

// LocalPref is the LOCAL_PREF given to routes learned from a neighbour with
// this metric: lower metric, higher preference.
func LocalPref(metric int) uint32 { return uint32(1000 - metric) }

// bestMetric is the lowest (most preferred) metric among the neighbours of
// one address family; neighbours worse than it are backups.
func bestMetric(ns []Neighbor, v4 bool) int {
	best := MaxMetric + 1
	for _, n := range ns {
		if n.PeerAddress.Is4() == v4 && n.Metric < best {
			best = n.Metric
		}
	}
	return best
}

// prependCount is how often the local AS is prepended on routes advertised
// to n (already defaulted), given all neighbours.
func prependCount(n Neighbor, all []Neighbor) int {
	if n.Prepend == NoPrepend || n.Metric <= bestMetric(all, n.PeerAddress.Is4()) {
		return 0
	}
	return n.Prepend
}
