package bgp

import (
	"net/netip"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
)

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func statement(t *testing.T, p *api.Policy, name string) *api.Statement {
	t.Helper()
	for _, s := range p.Statements {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func TestBuildPoliciesPrimarySecondary(t *testing.T) {
	c := azure()
	c.Neighbors = append(c.Neighbors, Neighbor{
		Name: "lab", PeerAddress: netip.MustParseAddr("169.254.20.2"), PeerASN: 64999, Metric: 200, Prepend: NoPrepend,
	})
	c = c.withDefaults()
	out := map[string][]netip.Prefix{
		"msee1": pfx("198.18.10.0/24", "198.18.11.0/25"),
		"msee2": pfx("0.0.0.0/0"),
	}
	req := buildPolicies(c.Neighbors, out)
	if len(req.Policies) != 2 || req.Policies[0].Name != importPolicyName || req.Policies[1].Name != exportPolicyName {
		t.Fatalf("policies = %v", req.Policies)
	}
	imp, exp := req.Policies[0], req.Policies[1]

	// Import: local routes first, above every neighbour; then one
	// statement per neighbour with LOCAL_PREF = 1000 - metric.
	if first := imp.Statements[0]; first.Name != "xwan-imp-local" ||
		first.Conditions.RouteType != api.Conditions_ROUTE_TYPE_LOCAL ||
		first.Actions.RouteAction != api.RouteAction_ACCEPT || first.Actions.LocalPref.GetValue() != 1000 {
		t.Errorf("first import statement = %v, want local routes accepted with local-pref 1000", first)
	}
	for name, lp := range map[string]uint32{"msee1": 910, "msee2": 900} {
		st := statement(t, imp, "xwan-imp-"+name)
		if st == nil || st.Conditions.NeighborSet.GetName() != "xwan-nbr-"+name ||
			st.Actions.RouteAction != api.RouteAction_ACCEPT || st.Actions.LocalPref.GetValue() != lp {
			t.Errorf("import statement for %s = %v, want accept with local-pref %d", name, st, lp)
		}
	}
	if st := statement(t, imp, "xwan-imp-lab"); st == nil || st.Actions.RouteAction != api.RouteAction_REJECT || st.Actions.LocalPref != nil {
		t.Errorf("accept-dynamic off: statement = %v, want reject", st)
	}

	// Export: MED = metric everywhere, prepend only on the backup.
	st1 := statement(t, exp, "xwan-exp-msee1")
	if st1 == nil || st1.Actions.Med.GetValue() != 90 || st1.Actions.AsPrepend != nil ||
		st1.Conditions.RouteType != api.Conditions_ROUTE_TYPE_LOCAL ||
		st1.Conditions.PrefixSet.GetName() != "xwan-out-msee1" {
		t.Errorf("primary export = %v, want MED 90, no prepend, local routes of xwan-out-msee1", st1)
	}
	st2 := statement(t, exp, "xwan-exp-msee2")
	if st2 == nil || st2.Actions.Med.GetValue() != 100 || st2.Actions.AsPrepend.GetAsn() != 65010 || st2.Actions.AsPrepend.GetRepeat() != 2 {
		t.Errorf("secondary export = %v, want MED 100 and 65010 prepended twice", st2)
	}
	if st := statement(t, exp, "xwan-exp-lab"); st != nil {
		t.Errorf("neighbour with nothing to advertise has an export statement %v (gobgp rejects empty prefix sets)", st)
	}

	// Prefix sets: exact lengths (gobgp's mask ranges are literal).
	var got []string
	for _, d := range req.DefinedSets {
		if d.DefinedType != api.DefinedType_PREFIX {
			continue
		}
		for _, p := range d.Prefixes {
			if p.MaskLengthMin != p.MaskLengthMax || netip.MustParsePrefix(p.IpPrefix).Bits() != int(p.MaskLengthMin) {
				t.Errorf("%s: %v is not an exact match", d.Name, p)
			}
			got = append(got, d.Name+" "+p.IpPrefix)
		}
	}
	want := []string{"xwan-out-msee1 198.18.10.0/24", "xwan-out-msee1 198.18.11.0/25", "xwan-out-msee2 0.0.0.0/0"}
	if !slices.Equal(got, want) {
		t.Errorf("prefix sets = %q, want %q", got, want)
	}
	for _, a := range policyAssignments() {
		if a.DefaultAction != api.RouteAction_REJECT || a.Name != "global" {
			t.Errorf("assignment %v: want global with default reject", a)
		}
	}
}

func TestPrependOnlyOnWorseMetric(t *testing.T) {
	c := azure()
	c.Neighbors[1].Metric = 90 // equal metrics: active/active, nobody prepends
	c = c.withDefaults()
	for _, n := range c.Neighbors {
		if k := prependCount(n, c.Neighbors); k != 0 {
			t.Errorf("%s: prepend %d with equal metrics", n.Name, k)
		}
	}
	c.Neighbors[1].Metric = 120
	c.Neighbors[1].Prepend = 4
	if k := prependCount(c.Neighbors[1], c.Neighbors); k != 4 {
		t.Errorf("backup prepend = %d, want 4", k)
	}
	c.Neighbors[1].Prepend = NoPrepend
	if k := prependCount(c.Neighbors[1], c.Neighbors); k != 0 {
		t.Errorf("NoPrepend gave %d", k)
	}
	// A v6 neighbour is ranked among the v6 neighbours only.
	v6 := Neighbor{Name: "v6", PeerAddress: netip.MustParseAddr("2001:db8::2"), Metric: 300, Prepend: 2}
	if k := prependCount(v6, append(c.Neighbors, v6)); k != 0 {
		t.Errorf("sole v6 neighbour prepends %d", k)
	}
}

func TestAdvertisePlan(t *testing.T) {
	v4 := Neighbor{Name: "a", PeerAddress: netip.MustParseAddr("169.254.10.2")}
	nets := pfx("198.18.12.0/24", "198.18.10.0/24", "2001:db8:1::/48", "198.18.11.0/24", "0.0.0.0/0")

	n := v4
	n.AdvertiseDefault = true
	if got, _ := advertisePlan(n, nets, nil); !slices.Equal(got, pfx("0.0.0.0/0")) {
		t.Errorf("default only: %v", got)
	}
	n = v4
	n.AdvertiseAll = true
	if got, _ := advertisePlan(n, nets, nil); !slices.Equal(got, pfx("198.18.10.0/24", "198.18.11.0/24", "198.18.12.0/24")) {
		t.Errorf("all (v4 only, no default from the networks): %v", got)
	}
	n.AdvertiseDefault = true
	n.MaxAdvertised = 2
	got, sup := advertisePlan(n, nets, nil)
	if !slices.Equal(got, pfx("0.0.0.0/0", "198.18.10.0/24")) || sup != 2 {
		t.Errorf("capped: %v, suppressed %d", got, sup)
	}
	// What a neighbour already has keeps its place under the cap: a new,
	// lower-sorting network must not push out an advertised one (gobgp
	// would not withdraw it).
	prev := pfx("0.0.0.0/0", "198.18.11.0/24")
	got, sup = advertisePlan(n, nets, prev)
	if !slices.Equal(got, pfx("0.0.0.0/0", "198.18.11.0/24")) || sup != 2 {
		t.Errorf("capped with history: %v, suppressed %d", got, sup)
	}
	// Once a kept prefix goes away, the room goes to the next one.
	got, _ = advertisePlan(n, pfx("198.18.10.0/24", "198.18.12.0/24"), prev)
	if !slices.Equal(got, pfx("0.0.0.0/0", "198.18.10.0/24")) {
		t.Errorf("after removal: %v", got)
	}
	v6 := Neighbor{Name: "b", PeerAddress: netip.MustParseAddr("2001:db8::2"), AdvertiseAll: true, AdvertiseDefault: true}
	if got, _ := advertisePlan(v6, nets, nil); !slices.Equal(got, pfx("::/0", "2001:db8:1::/48")) {
		t.Errorf("v6: %v", got)
	}
}
