package policytest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/xwan-dev/xwan/userspace/policy"
)

// Scenario is everything the LAN data path decides with: a rule set and the
// state of destinations, paths and path tables.
type Scenario struct {
	Topo     policy.Topology
	Rules    *policy.RuleSet
	Dests    map[netip.Prefix]policy.Dest
	Settings policy.Settings
	PathUp   map[uint16]bool
	Tables   map[policy.SiteLink][]uint16
}

// NumSites in a random scenario; site 1 is local, 5 the hub, 6 the
// backhaul server.
const NumSites = 6

// SitePrefix4 and SitePrefix6 are site i's LAN prefixes.
func SitePrefix4(i int) netip.Prefix { return netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", i)) }
func SitePrefix6(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/48", i))
}

// Model returns a reference model loaded with the scenario.
func (s *Scenario) Model() *policy.Model {
	m := policy.NewModel()
	m.Rules, m.Topo, m.Settings = s.Rules, s.Topo, s.Settings
	for p, d := range s.Dests {
		m.SetDest(p, d)
	}
	for k, v := range s.Tables {
		m.Tables[k] = v
	}
	for k, v := range s.PathUp {
		m.PathUp[k] = v
	}
	return m
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// randomAddr returns an address inside one of the sites' prefixes, or
// (sometimes) anywhere in the test ranges.
func randomAddr(r *rand.Rand, v6 bool) netip.Addr {
	site := 1 + r.IntN(NumSites+1) // NumSites+1: not a site
	if v6 {
		b := SitePrefix6(site).Addr().As16()
		b[6], b[15] = byte(r.IntN(4)), byte(r.IntN(256))
		if r.IntN(8) == 0 {
			b[1] = 0xdc // outside 2001:db8::/32 (still documentation-free space)
		}
		return netip.AddrFrom16(b)
	}
	b := SitePrefix4(site).Addr().As4()
	b[3] = byte(pick(r, 1, 2, 100, 129, 200, 255))
	if r.IntN(8) == 0 {
		b[1] = 19 // 198.19.x.x: in the test range, in no site
	}
	return netip.AddrFrom4(b)
}

func randomPrefix(r *rand.Rand) netip.Prefix {
	v6 := r.IntN(4) == 0
	a := randomAddr(r, v6)
	if v6 {
		return netip.PrefixFrom(a, pick(r, 0, 32, 48, 56, 64, 120, 128)).Masked()
	}
	return netip.PrefixFrom(a, pick(r, 0, 8, 16, 23, 24, 25, 30, 32)).Masked()
}

var portPool = []uint16{0, 1, 22, 53, 80, 443, 1000, 1500, 2000, 8080, 65535}

func randomPorts(r *rand.Rand) policy.PortRange {
	if r.IntN(2) == 0 {
		return policy.PortRange{}
	}
	lo, hi := pick(r, portPool...), pick(r, portPool...)
	if lo > hi {
		lo, hi = hi, lo
	}
	return policy.PortRange{Lo: lo, Hi: hi}
}

func randomEndpoint(r *rand.Rand, sites []string) policy.Endpoint {
	switch r.IntN(3) {
	case 0:
		return policy.Endpoint{Prefix: randomPrefix(r)}
	case 1:
		return policy.Endpoint{Site: pick(r, sites...)}
	}
	return policy.Endpoint{}
}

func randomAction(r *rand.Rand) policy.Action {
	return policy.Action{
		Transport:     pick(r, policy.OffCloud, policy.OffCloud, policy.Cloud, policy.Backhaul, policy.Direct, policy.Drop),
		Secondary:     pick(r, policy.Automatic, policy.NoSecondary, policy.CloudSecond),
		PreferredLink: pick(r, "", "", "wan1", "wan2"),
	}
}

// RandomRule returns a valid random simple rule.
func RandomRule(r *rand.Rand, sites []string, i int) policy.Rule {
	rule := policy.Rule{
		Name:   fmt.Sprintf("r%d", i),
		Src:    randomEndpoint(r, sites),
		Dst:    randomEndpoint(r, sites),
		Proto:  pick(r, -1, -1, 6, 17, 1, 58, 47),
		Action: randomAction(r),
	}
	if rule.Proto == 6 || rule.Proto == 17 {
		rule.SrcPorts, rule.DstPorts = randomPorts(r), randomPorts(r)
	}
	if r.IntN(6) == 0 {
		rule.VLAN = pick[uint16](r, 10, 20, 4094)
	}
	return rule
}

// Topology is the fixed naming of a random scenario.
func Topology() policy.Topology {
	t := policy.Topology{Sites: map[string]uint16{}, Links: map[string]uint8{"wan1": 1, "wan2": 2}}
	for i := 1; i <= NumSites; i++ {
		t.Sites[fmt.Sprintf("s%d", i)] = uint16(i)
	}
	return t
}

// RandomScenario returns a scenario with up to maxRules rules.
func RandomScenario(r *rand.Rand, maxRules int) *Scenario {
	s := &Scenario{
		Topo:     Topology(),
		Dests:    map[netip.Prefix]policy.Dest{},
		Settings: policy.Settings{LocalSite: 1, HubSite: 5, BackhaulSite: 6},
		PathUp:   map[uint16]bool{},
		Tables:   map[policy.SiteLink][]uint16{},
	}
	sites := make([]string, 0, NumSites)
	for i := 1; i <= NumSites; i++ {
		sites = append(sites, fmt.Sprintf("s%d", i))
		kind := policy.DestMesh
		if i == 1 {
			kind = policy.DestLocal
		}
		s.Dests[SitePrefix4(i)] = policy.Dest{Site: uint16(i), Kind: kind}
		s.Dests[SitePrefix6(i)] = policy.Dest{Site: uint16(i), Kind: kind}
	}
	// A more specific prefix inside another site's, and sometimes the
	// Internet via the backhaul server.
	s.Dests[netip.MustParsePrefix("198.18.3.128/25")] = policy.Dest{Site: 4, Kind: policy.DestMesh}
	if r.IntN(2) == 0 {
		s.Dests[netip.MustParsePrefix("0.0.0.0/0")] = policy.Dest{Site: 6, Kind: policy.DestBackhaul}
		s.Dests[netip.MustParsePrefix("::/0")] = policy.Dest{Site: 6, Kind: policy.DestBackhaul}
	}
	// Two paths per remote site, one per link: site i has paths 2i-1, 2i.
	for site := 2; site <= NumSites; site++ {
		p1, p2 := uint16(2*site-1), uint16(2*site)
		s.PathUp[p1], s.PathUp[p2] = r.IntN(5) != 0, r.IntN(3) != 0
		if r.IntN(6) == 0 {
			continue // no table at all
		}
		for link, choices := range map[uint8][]uint16{0: {p1, p2, p2, 0}, 1: {p1}, 2: {p2}} {
			if link != 0 && r.IntN(2) == 0 {
				continue
			}
			t := make([]uint16, policy.MaglevSlots)
			for i := range t {
				t[i] = pick(r, choices...)
			}
			s.Tables[policy.SiteLink{Site: uint16(site), Link: link}] = t
		}
	}
	n := r.IntN(maxRules + 1)
	s.Rules = &policy.RuleSet{Default: randomAction(r)}
	for i := 0; i < n; i++ {
		s.Rules.Rules = append(s.Rules.Rules, RandomRule(r, sites, i))
	}
	return s
}

// RandomFrame returns a frame shaped like LAN traffic for the scenario's
// universe: IPv4 and IPv6, VLAN tags, options, extension headers, fragments,
// and a share of truncated and corrupted frames.
func RandomFrame(r *rand.Rand) []byte {
	v6 := r.IntN(3) == 0
	f := Frame{Src: randomAddr(r, v6), Dst: randomAddr(r, v6)}
	f.Proto = pick[uint8](r, 6, 6, 17, 17, 1, 58, 47)
	if f.Proto == 6 || f.Proto == 17 {
		f.Sport, f.Dport = pick(r, portPool...), pick(r, portPool...)
		if r.IntN(3) == 0 {
			f.Sport = uint16(r.IntN(65536))
		}
	}
	switch r.IntN(8) {
	case 0:
		f.VLANs = []uint16{pick[uint16](r, 10, 20, 4094, 7)}
	case 1:
		f.VLANs = []uint16{pick[uint16](r, 10, 20), 30}
	case 2:
		if r.IntN(4) == 0 {
			f.VLANs = []uint16{1, 2, 3} // one tag too many
		}
	}
	if !v6 && r.IntN(6) == 0 {
		f.IPv4Opts = 4 * (1 + r.IntN(10))
	}
	if v6 && r.IntN(3) == 0 {
		for i := r.IntN(8); i > 0; i-- {
			f.Ext = append(f.Ext, Ext{Type: pick[uint8](r, 0, 43, 60, 51, 44), Len: uint8(r.IntN(3))})
		}
	}
	if r.IntN(8) == 0 { // a fragment
		off := uint16(0)
		if r.IntN(2) == 0 {
			off = uint16(1 + r.IntN(100))
			f.NoL4Header = true
		}
		if v6 {
			f.Ext = append(f.Ext, Ext{Type: 44, FragOff: off, More: r.IntN(2) == 0})
		} else {
			f.FragOff, f.MoreFrags = off, true
		}
	}
	if r.IntN(40) == 0 {
		f.NoL4Header = true // consistent IP lengths, no room for the L4 header
	}
	f.Payload = make([]byte, r.IntN(64))
	b := f.Bytes()
	switch r.IntN(20) {
	case 0: // truncated anywhere
		b = b[:r.IntN(len(b))]
	case 1: // a corrupted header byte
		i := r.IntN(min(len(b), 80))
		b[i] ^= byte(1 + r.IntN(255))
	case 2: // garbage
		b = make([]byte, r.IntN(100))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
	}
	return b
}
