package config

import (
	"errors"
	"net/netip"
	"slices"
	"strings"

	"github.com/xwan-dev/xwan/userspace/policy"
)

// This file checks relations between fields (names that must be unique or
// must exist, precedence versus bandwidth and off-cloud, rules against the
// topology) and then fills in defaults. decode.go has already checked each
// field on its own; fields it refused are in d.bad and are not looked at
// again, so one mistake gives one message.

func (d *decoder) validate(c *Config) {
	d.validateLAN(c)
	d.validateWAN(c)
	d.validatePeers(c)
	d.validateHub(c)
	d.validateRules(c)
	d.validateInterconnect(c)
}

// seen remembers the first field that used a name, for "duplicate" messages.
type seen map[string]string

// dup records key under field and returns the field that had it first.
func (s seen) dup(key, field string) (string, bool) {
	if first, ok := s[key]; ok {
		return first, true
	}
	s[key] = field
	return "", false
}

func (d *decoder) validateLAN(c *Config) {
	ifs := seen{}
	for i, name := range c.LAN.Interfaces {
		f := item("lan.interfaces", i)
		if first, ok := ifs.dup(name, f); ok && !d.bad[f] {
			d.errorAt(d.at(f), f, "duplicate interface %q (first at line %d)", name, d.at(first).line)
		}
	}
}

// precedence is a link's precedence once defaulted; 0 when it was refused.
func (d *decoder) precedence(c *Config, i int) Precedence {
	if d.bad[item("wan", i)+".precedence"] {
		return 0
	}
	if c.WAN[i].Precedence == 0 {
		return Active
	}
	return c.WAN[i].Precedence
}

// offCloud is whether link i carries off-cloud traffic once defaulted.
func (d *decoder) offCloud(c *Config, i int) bool {
	if d.precedence(c, i) == LastResort {
		return false
	}
	return !d.has(item("wan", i)+".off_cloud") || c.WAN[i].OffCloud
}

var precedenceNames = map[Precedence]string{Active: "an active link (precedence 1)", Passive: "a passive link (precedence 2)"}

func (d *decoder) validateWAN(c *Config) {
	names, publics := seen{}, seen{}
	for i, w := range c.WAN {
		p := item("wan", i)
		if d.bad[p] {
			continue // not a mapping: nothing to relate
		}
		if i == policy.MaxLinks-1 {
			d.errorAt(d.at(p), p, "too many WAN links: at most %d", policy.MaxLinks-1)
		}
		if f := child(p, "name"); w.Name != "" && !d.bad[f] {
			if first, ok := names.dup(w.Name, f); ok {
				d.errorAt(d.at(f), f, "duplicate WAN link name %q (first at line %d)", w.Name, d.at(first).line)
			}
		}
		if f := child(p, "interface"); slices.Contains(c.LAN.Interfaces, w.Interface) && !d.bad[f] {
			d.errorAt(d.at(f), f, "%s is also a LAN interface", w.Interface)
		}
		if f := child(p, "public"); w.Public.IsValid() {
			if first, ok := publics.dup(w.Public.String(), f); ok {
				d.errorAt(d.at(f), f, "%s is already the public endpoint of %s (line %d)", w.Public, strings.TrimSuffix(first, ".public"), d.at(first).line)
			}
		}
		prec := d.precedence(c, i)
		if f := child(p, "off_cloud"); prec == LastResort && d.has(f) && w.OffCloud {
			d.errorAt(d.at(f), f, "off-cloud cannot be enabled on a last-resort link (precedence 3)")
		}
		// Active and passive links share flows by bandwidth; last-resort
		// links only carry traffic when nothing else can.
		what, needBW := precedenceNames[prec]
		bw := child(p, "bandwidth")
		switch {
		case !needBW || d.bad[bw]:
		case !d.has(bw):
			d.errorAt(d.at(bw), bw, "required for %s", what)
		default:
			for _, dir := range []struct {
				key string
				v   uint64
			}{{"up", w.BandwidthUp}, {"down", w.BandwidthDown}} {
				f := child(bw, dir.key)
				switch {
				case d.bad[f]:
				case !d.has(f):
					d.errorAt(d.at(f), f, "required for %s", what)
				case dir.v == 0:
					d.errorAt(d.at(f), f, "must be more than 0 for %s", what)
				}
			}
		}
	}
}

func (d *decoder) validatePeers(c *Config) {
	sites, endpoints := seen{}, seen{}
	for i, w := range c.WAN {
		if w.Public.IsValid() {
			endpoints[w.Public.String()] = item("wan", i) + ".public"
		}
	}
	// Exact duplicates only: a prefix inside another is legitimate (longest
	// match wins), the same prefix at two sites is not.
	type owner struct{ site, field string }
	prefixes := map[netip.Prefix]owner{}
	addPrefixes := func(site, path string, ps []netip.Prefix) {
		for j, pfx := range ps {
			f := item(path, j)
			if !pfx.IsValid() {
				continue
			}
			if o, ok := prefixes[pfx]; ok {
				d.errorAt(d.at(f), f, "%s is already a prefix of %s (%s, line %d)", pfx, o.site, o.field, d.at(o.field).line)
				continue
			}
			prefixes[pfx] = owner{site, f}
		}
	}
	addPrefixes(c.Site, "lan.prefixes", c.LAN.Prefixes)

	for i, peer := range c.Peers {
		p := item("peers", i)
		if i == policy.MaxSites-2 {
			d.errorAt(d.at(p), p, "too many peers: at most %d", policy.MaxSites-2)
		}
		if f := child(p, "site"); peer.Site != "" && !d.bad[f] {
			if peer.Site == c.Site {
				d.errorAt(d.at(f), f, "%q is this site (site: above), not a peer", peer.Site)
			} else if first, ok := sites.dup(peer.Site, f); ok {
				d.errorAt(d.at(f), f, "duplicate peer %q (first at line %d)", peer.Site, d.at(first).line)
			}
		}
		addPrefixes(peer.Site, child(p, "prefixes"), peer.Prefixes)
		names := seen{}
		for j, l := range peer.Links {
			lp := item(child(p, "links"), j)
			if f := child(lp, "name"); l.Name != "" && !d.bad[f] {
				if first, ok := names.dup(l.Name, f); ok {
					d.errorAt(d.at(f), f, "duplicate link name %q for %s (first at line %d)", l.Name, peer.Site, d.at(first).line)
				}
			}
			// One endpoint, one site: two sites behind the same public
			// address and port cannot both be reached.
			if f := child(lp, "endpoint"); l.Endpoint.IsValid() {
				if first, ok := endpoints.dup(l.Endpoint.String(), f); ok {
					d.errorAt(d.at(f), f, "%s is already the endpoint of %s (line %d); every site needs its own public address and port",
						l.Endpoint, strings.TrimSuffix(strings.TrimSuffix(first, ".endpoint"), ".public"), d.at(first).line)
				}
			}
		}
		// Endpoints come from this file or from the hub (rendezvous); a
		// hub gateway learns its edges' endpoints when they dial in.
		f := child(p, "links")
		switch {
		case len(peer.Links) > 0 || d.bad[f] || peer.Site == "":
		case peer.Site == c.Hub && c.Role != RoleHub:
			d.errorAt(d.at(f), f, "required: %s is the hub, and nothing else can tell where it is", peer.Site)
		case c.Hub == "" && c.Role != RoleHub:
			d.errorAt(d.at(f), f, "required without a hub: nothing else can tell where %s is", peer.Site)
		}
	}
}

func (d *decoder) validateHub(c *Config) {
	if c.Hub == "" || d.bad["hub"] {
		return
	}
	if c.Role == RoleHub {
		d.errorAt(d.at("hub"), "hub", "a hub gateway (role: hub) has no hub of its own")
		return
	}
	for _, p := range c.Peers {
		if p.Site == c.Hub {
			return
		}
	}
	d.errorAt(d.at("hub"), "hub", "%q is not a peer (list it under peers:)", c.Hub)
}

// defaultAction is the action for unmatched traffic: as written, with the
// transport defaulted to cloud when there is a hub, off-cloud otherwise.
func defaultAction(c *Config) policy.Action {
	a := c.Default
	if a.Transport == 0 {
		a.Transport = policy.OffCloud
		if c.Hub != "" {
			a.Transport = policy.Cloud
		}
	}
	return a
}

func (d *decoder) validateRules(c *Config) {
	names := seen{}
	for i, r := range c.Rules {
		p := item("rules", i)
		if f := child(p, "name"); r.Name != "" && !d.bad[f] {
			if first, ok := names.dup(r.Name, f); ok {
				d.errorAt(d.at(f), f, "duplicate rule name %q (first at line %d)", r.Name, d.at(first).line)
			}
		}
		d.checkAction(c, p, r.Action)
	}
	if d.has("default") {
		d.checkAction(c, "default", c.Default)
	}

	rs := policy.RuleSet{Rules: c.Rules, Default: defaultAction(c)}
	var verrs policy.ValidationError
	if err := rs.Validate(c.Topology()); errors.As(err, &verrs) {
		for _, e := range verrs {
			f := d.ruleField("default", e.Msg)
			if e.Index >= 0 {
				f = d.ruleField(item("rules", e.Index), e.Msg)
			}
			d.errorAt(d.at(f), f, "%s", e.Msg)
		}
	} else if err != nil {
		d.errorAt(d.at("rules"), "rules", "%v", err)
	}
}

// policyFields maps the start of a policy.Validate message to the rule
// field it is about, so that the message points at that field's line. A
// message not listed here points at the rule.
var policyFields = []struct{ prefix, field string }{ // most specific first
	{"unknown preferred link", "link"},
	{"source ports", "source_ports"},
	{"bad source port range", "source_ports"},
	{"destination ports", "destination_ports"},
	{"bad destination port range", "destination_ports"},
	{"unknown source site", "source"},
	{"source ", "source"},
	{"unknown destination site", "destination"},
	{"destination ", "destination"},
	{"protocol", "protocol"},
	{"VLAN", "vlan"},
	{"unknown transport", "transport"},
	{"unknown secondary", "secondary"},
}

func (d *decoder) ruleField(rule, msg string) string {
	if strings.HasPrefix(msg, "complex rule") {
		for _, k := range []string{"applications", "categories", "domains"} {
			if d.has(child(rule, k)) {
				return child(rule, k)
			}
		}
	}
	for _, m := range policyFields {
		if strings.HasPrefix(msg, m.prefix) && d.has(child(rule, m.field)) {
			return child(rule, m.field)
		}
	}
	return rule
}

// checkAction checks what policy.Validate cannot know: whether a transport
// has anywhere to go from this gateway.
func (d *decoder) checkAction(c *Config, path string, a policy.Action) {
	if c.Role != RoleHub && c.Hub == "" {
		if f := child(path, "transport"); a.Transport == policy.Cloud && !d.bad[f] {
			d.errorAt(d.at(f), f, "cloud needs a hub (set hub: to the peer that is the hub)")
		}
		if f := child(path, "secondary"); a.Secondary == policy.CloudSecond && !d.bad[f] {
			d.errorAt(d.at(f), f, "cloud needs a hub (set hub: to the peer that is the hub)")
		}
	}
	if a.Transport == policy.OffCloud && a.PreferredLink != "" {
		for i, w := range c.WAN {
			if w.Name == a.PreferredLink && !d.offCloud(c, i) {
				f := child(path, "link")
				d.errorAt(d.at(f), f, "%s does not carry off-cloud traffic (%s)", w.Name, offCloudReason(d.precedence(c, i)))
				break
			}
		}
	}
}

func offCloudReason(p Precedence) string {
	if p == LastResort {
		return "it is a last-resort link, precedence 3"
	}
	return "off_cloud: false"
}

// defaults fills in what the file left out; it runs on a valid
// configuration only.
func (d *decoder) defaults(c *Config) {
	if c.Role == "" {
		c.Role = RoleEdge
	}
	for i := range c.WAN {
		c.WAN[i].Precedence = d.precedence(c, i)
		c.WAN[i].OffCloud = d.offCloud(c, i)
	}
	if c.Tunnel.Port == 0 {
		c.Tunnel.Port = DefaultTunnelPort
	}
	if c.Tunnel.Keepalive == 0 {
		c.Tunnel.Keepalive = DefaultKeepalive
	}
	if !d.has("tunnel.mss_clamp") {
		c.Tunnel.MSSClamp = true
	}
	if c.Tunnel.ProbeInterval == 0 {
		c.Tunnel.ProbeInterval = DefaultProbeInterval
	}
	c.Default = defaultAction(c)
	if c.API.Socket == "" {
		c.API.Socket = DefaultAPISocket
	}
	if c.BPF.PinRoot == "" {
		c.BPF.PinRoot = DefaultPinRoot
	}
	d.interconnectDefaults(c)
}
