// Package policy is xwan's rule model: simple rules, their validation, the
// compiler that turns them into the LAN XDP program's maps, and a pure Go
// classifier with the same semantics. The Go classifier evaluates the rules
// directly (first match in order), so it is an independent reference for
// the kernel's bit-vector classifier, and it classifies the packets the
// gateway itself sends into a tunnel.
package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// Limits of the kernel classifier (bpf/include/xwan_types.h).
const (
	MaxRules    = 4096
	DefaultRule = MaxRules // rule id reported when no rule matched
	MaxClasses  = 32768    // per generation, all fields together
	MaxSites    = 1024     // site ids 1..1023
	MaxPaths    = 1024     // path ids 1..1023
	MaxLinks    = 16       // local link ids 1..15
	BitmapWords = MaxRules / 64
)

// Transport is where a rule sends traffic.
type Transport uint8

const (
	OffCloud Transport = 1 // mesh tunnel to the destination site
	Cloud    Transport = 2 // tunnel to the hub
	Backhaul Transport = 3 // tunnel to the backhaul server site
	Direct   Transport = 4 // the kernel routes it
	Drop     Transport = 5
)

var transportNames = map[Transport]string{
	OffCloud: "off-cloud", Cloud: "cloud", Backhaul: "backhaul", Direct: "direct", Drop: "drop",
}

func (t Transport) String() string {
	if s, ok := transportNames[t]; ok {
		return s
	}
	return fmt.Sprintf("transport(%d)", uint8(t))
}

// Tunnel reports whether the transport is carried by a tunnel path.
func (t Transport) Tunnel() bool { return t == OffCloud || t == Cloud || t == Backhaul }

// ParseTransport reads a transport name as written in the configuration.
func ParseTransport(s string) (Transport, error) {
	for t, n := range transportNames {
		if n == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown transport %q (want off-cloud, cloud, backhaul, direct or drop)", s)
}

// Secondary is the transport used when the rule's own has no usable path.
type Secondary uint8

const (
	Automatic   Secondary = 0 // the other tunnel transport: off-cloud <-> cloud, backhaul -> cloud
	NoSecondary Secondary = 1 // none: the packet is dropped
	CloudSecond Secondary = 2 // the hub
)

var secondaryNames = map[Secondary]string{Automatic: "automatic", NoSecondary: "none", CloudSecond: "cloud"}

func (s Secondary) String() string {
	if n, ok := secondaryNames[s]; ok {
		return n
	}
	return fmt.Sprintf("secondary(%d)", uint8(s))
}

// ParseSecondary reads a secondary transport name.
func ParseSecondary(s string) (Secondary, error) {
	for v, n := range secondaryNames {
		if n == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown secondary transport %q (want automatic, none or cloud)", s)
}

// Endpoint is one side of a rule: any address, a prefix, or a site.
type Endpoint struct {
	Prefix netip.Prefix // valid when set
	Site   string       // non-empty when set
}

// Any reports whether the endpoint matches every address.
func (e Endpoint) Any() bool { return !e.Prefix.IsValid() && e.Site == "" }

func (e Endpoint) String() string {
	switch {
	case e.Prefix.IsValid():
		return e.Prefix.String()
	case e.Site != "":
		return "site:" + e.Site
	}
	return "any"
}

// PortRange is an inclusive range; the zero value means any port.
type PortRange struct{ Lo, Hi uint16 }

// AnyPort matches every port.
var AnyPort = PortRange{0, 65535}

// Any reports whether the range matches every port.
func (r PortRange) Any() bool { return r == PortRange{} || r == AnyPort }

func (r PortRange) norm() PortRange {
	if r == (PortRange{}) {
		return AnyPort
	}
	return r
}

// Contains reports whether p is in the range.
func (r PortRange) Contains(p uint16) bool {
	r = r.norm()
	return p >= r.Lo && p <= r.Hi
}

// Action is what a matching rule does.
type Action struct {
	Transport     Transport
	Secondary     Secondary
	PreferredLink string // local link name, empty for none
}

// Rule is a simple rule: everything in it can be evaluated in the kernel.
// Applications, Categories and Domains make a rule complex: they are kept in
// the model only so validation can refuse them with a clear message.
type Rule struct {
	Name     string
	Src, Dst Endpoint
	Proto    int // IP protocol number, -1 for any
	SrcPorts PortRange
	DstPorts PortRange
	VLAN     uint16 // outer VLAN id 1..4094; 0 matches any frame
	Action   Action

	Applications []string
	Categories   []string
	Domains      []string
}

// RuleSet is an ordered rule list (first match wins) and the action for
// packets to a remote destination that no rule matches.
type RuleSet struct {
	Rules   []Rule
	Default Action
}

// Topology names the sites and local links rules may refer to.
type Topology struct {
	Sites map[string]uint16 // site name -> id (1..MaxSites-1)
	Links map[string]uint8  // local link name -> id (1..MaxLinks-1)
}

// RuleError is one problem with one rule.
type RuleError struct {
	Index int // 0-based position in the rule list; -1 for the default action
	Name  string
	Msg   string
}

func (e RuleError) Error() string {
	if e.Index < 0 {
		return "default action: " + e.Msg
	}
	return fmt.Sprintf("rule %d (%q): %s", e.Index+1, e.Name, e.Msg)
}

// ValidationError lists every problem found in a rule set.
type ValidationError []RuleError

func (v ValidationError) Error() string {
	msgs := make([]string, len(v))
	for i, e := range v {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Validate checks a rule set against a topology; it returns nil or a
// ValidationError naming each bad rule by position and name.
func (rs *RuleSet) Validate(topo Topology) error {
	var errs ValidationError
	bad := func(i int, name, format string, args ...any) {
		errs = append(errs, RuleError{Index: i, Name: name, Msg: fmt.Sprintf(format, args...)})
	}
	if len(rs.Rules) > MaxRules {
		bad(len(rs.Rules)-1, rs.Rules[len(rs.Rules)-1].Name,
			"too many rules: %d, the kernel classifier holds at most %d", len(rs.Rules), MaxRules)
	}
	checkAction := func(i int, name string, a Action) {
		if _, ok := transportNames[a.Transport]; !ok {
			bad(i, name, "unknown transport %d", a.Transport)
		}
		if _, ok := secondaryNames[a.Secondary]; !ok {
			bad(i, name, "unknown secondary transport %d", a.Secondary)
		}
		if a.PreferredLink != "" {
			if _, ok := topo.Links[a.PreferredLink]; !ok {
				bad(i, name, "unknown preferred link %q", a.PreferredLink)
			}
		}
	}
	for i, r := range rs.Rules {
		if len(r.Applications)+len(r.Categories)+len(r.Domains) > 0 {
			bad(i, r.Name, "complex rule: applications, categories and domain names cannot be evaluated by the kernel classifier; use prefixes, sites, protocol, ports and VLAN only")
		}
		for _, side := range []struct {
			what string
			e    Endpoint
		}{{"source", r.Src}, {"destination", r.Dst}} {
			if side.e.Prefix.IsValid() && side.e.Site != "" {
				bad(i, r.Name, "%s names both a prefix and a site", side.what)
			}
			if side.e.Prefix.IsValid() && side.e.Prefix != side.e.Prefix.Masked() {
				bad(i, r.Name, "%s prefix %s has host bits set (did you mean %s?)", side.what, side.e.Prefix, side.e.Prefix.Masked())
			}
			if side.e.Site != "" {
				if _, ok := topo.Sites[side.e.Site]; !ok {
					bad(i, r.Name, "unknown %s site %q", side.what, side.e.Site)
				}
			}
		}
		if r.Proto < -1 || r.Proto > 255 {
			bad(i, r.Name, "protocol %d out of range 0-255", r.Proto)
		}
		for _, pr := range []struct {
			what string
			r    PortRange
		}{{"source", r.SrcPorts}, {"destination", r.DstPorts}} {
			if pr.r.Lo > pr.r.Hi {
				bad(i, r.Name, "bad %s port range %d-%d: low end above high end", pr.what, pr.r.Lo, pr.r.Hi)
			}
			if !pr.r.Any() && r.Proto != ProtoTCP && r.Proto != ProtoUDP {
				bad(i, r.Name, "%s ports need protocol tcp or udp", pr.what)
			}
		}
		if r.VLAN > 4094 {
			bad(i, r.Name, "VLAN %d out of range 1-4094", r.VLAN)
		}
		checkAction(i, r.Name, r.Action)
	}
	checkAction(-1, "", rs.Default)
	for name, id := range topo.Sites {
		if id == 0 || id >= MaxSites {
			errs = append(errs, RuleError{Index: -1, Msg: fmt.Sprintf("site %q has id %d, outside 1-%d", name, id, MaxSites-1)})
		}
	}
	for name, id := range topo.Links {
		if id == 0 || id >= MaxLinks {
			errs = append(errs, RuleError{Index: -1, Msg: fmt.Sprintf("link %q has id %d, outside 1-%d", name, id, MaxLinks-1)})
		}
	}
	if errs != nil {
		return errs
	}
	return nil
}

// Protocol numbers rules may need by name.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)
