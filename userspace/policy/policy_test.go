package policy_test

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/policy/policytest"
)

func topo() policy.Topology { return policytest.Topology() }

func TestValidateErrors(t *testing.T) {
	ok := policy.Action{Transport: policy.OffCloud}
	tests := []struct {
		name string
		rule policy.Rule
		want string
	}{
		{"bad port range", policy.Rule{Name: "web", Proto: 6, DstPorts: policy.PortRange{Lo: 443, Hi: 80}, Action: ok},
			`rule 1 ("web"): bad destination port range 443-80: low end above high end`},
		{"ports without tcp/udp", policy.Rule{Name: "ping", Proto: 1, DstPorts: policy.PortRange{Lo: 1, Hi: 2}, Action: ok},
			`rule 1 ("ping"): destination ports need protocol tcp or udp`},
		{"host bits", policy.Rule{Name: "net", Proto: -1, Dst: policy.Endpoint{Prefix: netip.MustParsePrefix("198.18.1.1/24")}, Action: ok},
			`rule 1 ("net"): destination prefix 198.18.1.1/24 has host bits set (did you mean 198.18.1.0/24?)`},
		{"unknown site", policy.Rule{Name: "to-x", Proto: -1, Dst: policy.Endpoint{Site: "nowhere"}, Action: ok},
			`rule 1 ("to-x"): unknown destination site "nowhere"`},
		{"complex", policy.Rule{Name: "saas", Proto: -1, Domains: []string{"example.com"}, Action: ok},
			`rule 1 ("saas"): complex rule: applications, categories and domain names cannot be evaluated by the kernel classifier; use prefixes, sites, protocol, ports and VLAN only`},
		{"bad vlan", policy.Rule{Name: "v", Proto: -1, VLAN: 4095, Action: ok},
			`rule 1 ("v"): VLAN 4095 out of range 1-4094`},
		{"bad link", policy.Rule{Name: "l", Proto: -1, Action: policy.Action{Transport: policy.OffCloud, PreferredLink: "wan9"}},
			`rule 1 ("l"): unknown preferred link "wan9"`},
		{"bad transport", policy.Rule{Name: "t", Proto: -1},
			`rule 1 ("t"): unknown transport 0`},
		{"bad proto", policy.Rule{Name: "p", Proto: 300, Action: ok},
			`rule 1 ("p"): protocol 300 out of range 0-255`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := &policy.RuleSet{Rules: []policy.Rule{tc.rule}, Default: ok}
			err := rs.Validate(topo())
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
			if _, err := policy.Compile(rs, topo()); err == nil {
				t.Fatal("Compile accepted a rule set Validate refuses")
			}
		})
	}
}

func TestValidateNamesEveryBadRuleByPosition(t *testing.T) {
	ok := policy.Action{Transport: policy.Cloud}
	rs := &policy.RuleSet{Default: ok, Rules: []policy.Rule{
		{Name: "fine", Proto: -1, Action: ok},
		{Name: "bad1", Proto: -1, Src: policy.Endpoint{Site: "zz"}, Action: ok},
		{Name: "fine2", Proto: -1, Action: ok},
		{Name: "bad2", Proto: 17, SrcPorts: policy.PortRange{Lo: 9, Hi: 1}, Action: ok},
	}}
	err := rs.Validate(topo())
	verr, isV := err.(policy.ValidationError)
	if !isV || len(verr) != 2 || verr[0].Index != 1 || verr[1].Index != 3 {
		t.Fatalf("want errors for rules 2 and 4, got %v", err)
	}
	if !strings.Contains(err.Error(), `rule 2 ("bad1")`) || !strings.Contains(err.Error(), `rule 4 ("bad2")`) {
		t.Fatalf("message does not name the rules: %v", err)
	}
}

func TestTooManyRules(t *testing.T) {
	ok := policy.Action{Transport: policy.Cloud}
	rs := &policy.RuleSet{Default: ok}
	for i := 0; i <= policy.MaxRules; i++ {
		rs.Rules = append(rs.Rules, policy.Rule{Name: "r", Proto: -1, Action: ok})
	}
	if err := rs.Validate(topo()); err == nil || !strings.Contains(err.Error(), "too many rules: 4097, the kernel classifier holds at most 4096") {
		t.Fatalf("got %v", err)
	}
}

// TestCompiledAgreesWithRules checks the compiler without a kernel: the
// kernel's algorithm run over the compiled tables (Compiled.Eval) must pick
// the same rule as the rule model's first match.
func TestCompiledAgreesWithRules(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		sc := policytest.RandomScenario(r, pickN(r))
		c, err := policy.Compile(sc.Rules, sc.Topo)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 200; j++ {
			p, _, ok := packet.ParseEthernet(policytest.RandomFrame(r))
			if !ok {
				continue
			}
			ss, ds := uint16(r.IntN(8)), uint16(r.IntN(8))
			want := sc.Rules.Match(sc.Topo, p.Key, ss, ds)
			if got := c.Eval(p.Key, ss, ds); got != want {
				t.Fatalf("scenario %d: compiled picks rule %d, rules say %d for %+v (sites %d->%d)", i, got, want, p.Key, ss, ds)
			}
		}
	}
}

func pickN(r *rand.Rand) int { return []int{3, 30, 200}[r.IntN(3)] }

func TestCompileDeduplicatesClasses(t *testing.T) {
	ok := policy.Action{Transport: policy.OffCloud}
	rs := &policy.RuleSet{Default: ok}
	for i := 0; i < 100; i++ {
		rs.Rules = append(rs.Rules, policy.Rule{Name: "same", Proto: 6, DstPorts: policy.PortRange{Lo: 443, Hi: 443}, Action: ok})
	}
	c, err := policy.Compile(rs, topo())
	if err != nil {
		t.Fatal(err)
	}
	// all-rules, no-rules: the hundred identical rules need two classes.
	if len(c.Bitmaps) != 2 {
		t.Fatalf("%d classes for 100 identical rules, want 2", len(c.Bitmaps))
	}
}

func TestModelPathChoiceAndSecondary(t *testing.T) {
	m := policy.NewModel()
	m.Topo = topo()
	m.Settings = policy.Settings{LocalSite: 1, HubSite: 5}
	m.SetDest(netip.MustParsePrefix("198.18.1.0/24"), policy.Dest{Site: 1, Kind: policy.DestLocal})
	m.SetDest(netip.MustParsePrefix("198.18.2.0/24"), policy.Dest{Site: 2, Kind: policy.DestMesh})
	m.Rules = &policy.RuleSet{
		Rules:   []policy.Rule{{Name: "mesh", Proto: -1, Dst: policy.Endpoint{Site: "s2"}, Action: policy.Action{Transport: policy.OffCloud, Secondary: policy.Automatic}}},
		Default: policy.Action{Transport: policy.Cloud},
	}
	frame := (&policytest.Frame{Src: netip.MustParseAddr("198.18.1.5"), Dst: netip.MustParseAddr("198.18.2.5"), Proto: 17, Sport: 1, Dport: 2}).Bytes()

	// No path anywhere: dropped.
	if res := m.Classify(frame); res.Reason.String() != "no_path" {
		t.Fatalf("no paths: %+v", res)
	}
	// Only the hub is reachable: automatic secondary takes the cloud.
	table := func(p uint16) []uint16 {
		s := make([]uint16, policy.MaglevSlots)
		for i := range s {
			s[i] = p
		}
		return s
	}
	m.Tables[policy.SiteLink{Site: 5}] = table(9)
	m.PathUp[9] = true
	res := m.Classify(frame)
	if res.Meta == nil || res.Meta.PathID != 9 || policy.Transport(res.Meta.Transport) != policy.Cloud || res.Meta.Flags&0x02 == 0 {
		t.Fatalf("hub only: %+v %+v", res, res.Meta)
	}
	// The mesh path comes up: the cached flow sticks to the hub while it is up.
	m.Tables[policy.SiteLink{Site: 2}] = table(3)
	m.PathUp[3] = true
	if res := m.Classify(frame); res.Meta.PathID != 9 || res.Meta.Flags&0x01 == 0 {
		t.Fatalf("sticky flow moved: %+v", res.Meta)
	}
	// The hub path goes down: the flow is re-classified onto the mesh.
	m.PathUp[9] = false
	if res := m.Classify(frame); res.Meta.PathID != 3 || policy.Transport(res.Meta.Transport) != policy.OffCloud {
		t.Fatalf("after hub down: %+v", res.Meta)
	}
	// Changing the destination prefix forgets the flow.
	m.SetDest(netip.MustParsePrefix("198.18.2.0/24"), policy.Dest{Site: 2, Kind: policy.DestMesh})
	if len(m.Flows) != 0 {
		t.Fatalf("flows survive a destination change: %v", m.Flows)
	}
}

func TestMappedPrefixes(t *testing.T) {
	a, bits := policy.Mapped(netip.MustParsePrefix("198.18.0.0/15"))
	if bits != 111 || !policy.Contains16(a, bits, netip.MustParseAddr("::ffff:198.19.255.1").As16()) ||
		policy.Contains16(a, bits, netip.MustParseAddr("::ffff:198.20.0.1").As16()) {
		t.Fatalf("mapped /15: %v %d", a, bits)
	}
	var pt policy.PrefixTable[int]
	pt.Set(netip.MustParsePrefix("198.18.0.0/16"), 1)
	pt.Set(netip.MustParsePrefix("198.18.3.0/24"), 2)
	pt.Set(netip.MustParsePrefix("::/0"), 3)
	for addr, want := range map[string]int{"198.18.3.9": 2, "198.18.9.9": 1, "2001:db8::1": 3, "203.0.113.1": 3} {
		if v, _ := pt.Lookup(netip.MustParseAddr(addr).As16()); v != want {
			t.Errorf("%s -> %d, want %d", addr, v, want)
		}
	}
}
