package policy

import (
	"net/netip"

	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// MaglevSlots is the size of every per-site path table (a prime).
const MaglevSlots = 1021

// DestKind says what a destination prefix is.
type DestKind uint8

const (
	DestLocal    DestKind = 1 // this site: the kernel delivers it
	DestMesh     DestKind = 2 // a remote site
	DestBackhaul DestKind = 3 // the Internet via a backhaul server site
)

// Dest is the value of a destination prefix.
type Dest struct {
	Site uint16
	Kind DestKind
}

// Settings are the site-wide ids the data path needs.
type Settings struct {
	LocalSite    uint16
	HubSite      uint16
	BackhaulSite uint16
}

// SiteLink keys a path table: a site's paths, all of them (Link 0) or only
// those on one local link.
type SiteLink struct {
	Site uint16
	Link uint8
}

// FlowEntry is a flow cache entry (struct flow_entry without the clock).
type FlowEntry struct {
	Generation uint32
	RuleID     uint16
	PathID     uint16
	SiteID     uint16
	Transport  Transport
	Secondary  bool
}

// Result is the verdict on one frame.
type Result struct {
	Action verdict.Action
	Reason verdict.Reason
	Meta   *verdict.Meta // nil unless the frame is handed to a tunnel
}

// Model is the Go reference of the LAN data path: the same inputs as the
// kernel's maps, the rules in their source form, and its own flow cache.
type Model struct {
	Rules      *RuleSet
	Topo       Topology
	Generation uint32
	Dests      PrefixTable[Dest]
	Settings   Settings
	Tables     map[SiteLink][]uint16 // MaglevSlots path ids, 0 = empty
	PathUp     map[uint16]bool
	Flows      map[packet.Key]FlowEntry
	HaveXSK    bool // an AF_XDP socket is bound on the queue
}

// NewModel returns an empty model with generation 0 and no rules.
func NewModel() *Model {
	return &Model{
		Rules:  &RuleSet{Default: Action{Transport: Cloud}},
		Tables: map[SiteLink][]uint16{},
		PathUp: map[uint16]bool{},
		Flows:  map[packet.Key]FlowEntry{},
	}
}

// Match returns the index of the first rule that accepts the packet, or
// DefaultRule. srcSite and dstSite are 0 when the address is in no site.
func (rs *RuleSet) Match(topo Topology, k packet.Key, srcSite, dstSite uint16) int {
	endpoint := func(e Endpoint, a Addr16, site uint16) bool {
		switch {
		case e.Prefix.IsValid():
			p, bits := Mapped(e.Prefix)
			return Contains16(p, bits, a)
		case e.Site != "":
			return site != 0 && topo.Sites[e.Site] == site
		}
		return true
	}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if endpoint(r.Src, k.Src, srcSite) && endpoint(r.Dst, k.Dst, dstSite) &&
			(r.Proto < 0 || r.Proto == int(k.Proto)) &&
			r.SrcPorts.Contains(k.Sport) && r.DstPorts.Contains(k.Dport) &&
			(r.VLAN == 0 || r.VLAN == k.VLAN) {
			return i
		}
	}
	return DefaultRule
}

func (m *Model) action(rule int) Action {
	if rule == DefaultRule {
		return m.Rules.Default
	}
	return m.Rules.Rules[rule].Action
}

func (m *Model) pathUp(id uint16) bool { return id != 0 && id < MaxPaths && m.PathUp[id] }

func (m *Model) tablePath(site uint16, link uint8, hash uint32) uint16 {
	t := m.Tables[SiteLink{site, link}]
	if len(t) != MaglevSlots {
		return 0
	}
	if p := t[hash%MaglevSlots]; m.pathUp(p) {
		return p
	}
	return 0
}

func (m *Model) pickPath(site uint16, link uint8, hash uint32) uint16 {
	if site == 0 {
		return 0
	}
	var p uint16
	if link != 0 {
		p = m.tablePath(site, link, hash)
	}
	if p == 0 {
		p = m.tablePath(site, 0, hash)
	}
	return p
}

func (m *Model) tunnelSite(t Transport, dst Dest) uint16 {
	switch t {
	case OffCloud:
		if dst.Kind == DestMesh {
			return dst.Site
		}
	case Cloud:
		return m.Settings.HubSite
	case Backhaul:
		if dst.Kind == DestBackhaul {
			return dst.Site
		}
		return m.Settings.BackhaulSite
	}
	return 0
}

func secondaryOf(t Transport, s Secondary) Transport {
	switch s {
	case NoSecondary:
		return 0
	case CloudSecond:
		if t == Cloud {
			return 0
		}
		return Cloud
	}
	if t == Cloud {
		return OffCloud
	}
	return Cloud
}

// Classify decides about one Ethernet frame, updating the model's flow
// cache as the kernel updates its own.
func (m *Model) Classify(frame []byte) Result {
	p, reason, ok := packet.ParseEthernet(frame)
	if !ok {
		return Result{Action: verdict.Pass, Reason: reason}
	}
	return m.classify(p, true)
}

// Decide classifies a parsed packet without the flow cache: the decision a
// new flow gets. xwand uses it for packets the gateway sends itself (read
// from the tunnel device), where the table's hash keeps a flow on its path.
func (m *Model) Decide(p packet.Packet) Result { return m.classify(p, false) }

func (m *Model) classify(p packet.Packet, useCache bool) Result {
	meta := verdict.Meta{Generation: m.Generation}
	if p.Frag != packet.NotFragment {
		meta.Flags |= verdict.FlagFragment
	}
	if p.IPv6 {
		meta.Flags |= verdict.FlagIPv6
	}

	fe, hit := m.Flows[p.Key]
	if p.Frag == packet.LaterFragment || !useCache {
		hit = false
	}
	if hit && fe.Generation == m.Generation && (!fe.Transport.Tunnel() || m.pathUp(fe.PathID)) {
		meta.RuleID, meta.PathID, meta.SiteID = fe.RuleID, fe.PathID, fe.SiteID
		meta.Transport = uint8(fe.Transport)
		meta.Flags |= verdict.FlagFlowHit
		if fe.Secondary {
			meta.Flags |= verdict.FlagSecondary
		}
		return m.finish(meta, fe.Transport, verdict.Redirect)
	}

	dst, ok := m.Dests.Lookup(p.Key.Dst)
	if !ok {
		return Result{Action: verdict.Pass, Reason: verdict.NoRoute}
	}
	if dst.Kind == DestLocal {
		return Result{Action: verdict.Pass, Reason: verdict.Local}
	}
	hash := p.Key.Hash()

	var srcSite, dstSite uint16
	if src, ok := m.Dests.Lookup(p.Key.Src); ok && (src.Kind == DestLocal || src.Kind == DestMesh) {
		srcSite = src.Site
	}
	if dst.Kind == DestMesh {
		dstSite = dst.Site
	}
	rule := m.Rules.Match(m.Topo, p.Key, srcSite, dstSite)
	act := m.action(rule)
	meta.RuleID = uint16(rule)
	t := act.Transport
	link := m.Topo.Links[act.PreferredLink]
	res := verdict.Redirect
	switch {
	case t == Direct:
	case !t.Tunnel():
		t = Drop
	default:
		site := m.tunnelSite(t, dst)
		path := m.pickPath(site, link, hash)
		if path == 0 {
			if alt := secondaryOf(t, act.Secondary); alt != 0 {
				site = m.tunnelSite(alt, dst)
				if path = m.pickPath(site, link, hash); path != 0 {
					t = alt
					meta.Flags |= verdict.FlagSecondary
				}
			}
		}
		if path == 0 {
			t, res = Drop, verdict.NoPath
		} else {
			meta.PathID, meta.SiteID = path, site
		}
	}
	meta.Transport = uint8(t)
	if useCache && p.Frag != packet.LaterFragment && res != verdict.NoPath {
		m.Flows[p.Key] = FlowEntry{
			Generation: m.Generation, RuleID: meta.RuleID, PathID: meta.PathID,
			SiteID: meta.SiteID, Transport: t, Secondary: meta.Flags&verdict.FlagSecondary != 0,
		}
	}
	return m.finish(meta, t, res)
}

func (m *Model) finish(meta verdict.Meta, t Transport, res verdict.Reason) Result {
	switch {
	case res == verdict.NoPath:
		return Result{Action: verdict.Drop, Reason: verdict.NoPath}
	case t == Direct:
		return Result{Action: verdict.Pass, Reason: verdict.Direct}
	case t == Drop:
		return Result{Action: verdict.Drop, Reason: verdict.RuleDrop}
	}
	if !m.HaveXSK {
		return Result{Action: verdict.Pass, Reason: verdict.NoXSK, Meta: &meta}
	}
	return Result{Action: verdict.RedirectAction, Reason: verdict.Redirect, Meta: &meta}
}

// SetDest maps a destination prefix and, as the kernel's loader does,
// forgets the cached flows it may change.
func (m *Model) SetDest(p netip.Prefix, d Dest) {
	m.Dests.Set(p, d)
	m.InvalidateFlows([]netip.Prefix{p})
}

// DeleteDest removes a destination prefix and the flows it may change.
func (m *Model) DeleteDest(p netip.Prefix) {
	m.Dests.Delete(p)
	m.InvalidateFlows([]netip.Prefix{p})
}

// InvalidateFlows forgets every cached flow whose source or destination is
// inside one of the prefixes: a change of those prefixes may change the
// flow's sites, and so its rule and path.
func (m *Model) InvalidateFlows(prefixes []netip.Prefix) {
	var in PrefixTable[bool]
	for _, p := range prefixes {
		in.Set(p, true)
	}
	for k := range m.Flows {
		if _, ok := in.Lookup(k.Src); ok {
			delete(m.Flows, k)
		} else if _, ok := in.Lookup(k.Dst); ok {
			delete(m.Flows, k)
		}
	}
}

// DestChanges lists the prefixes whose entry differs between two
// destination tables: removed, added or changed.
func DestChanges(old, new map[netip.Prefix]Dest) []netip.Prefix {
	var out []netip.Prefix
	for p, d := range old {
		if nd, ok := new[p]; !ok || nd != d {
			out = append(out, p)
		}
	}
	for p := range new {
		if _, ok := old[p]; !ok {
			out = append(out, p)
		}
	}
	return out
}
