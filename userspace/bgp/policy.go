package bgp

import (
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
)

// Names of the gobgp objects xwan owns. gobgp only applies global policies
// to ordinary eBGP peers, so everything is one global import and one global
// export policy whose statements are scoped to a neighbour by a neighbour
// set.
const (
	importPolicyName = "xwan-import"
	exportPolicyName = "xwan-export"
)

// localOriginPref is the LOCAL_PREF of xwan's own routes.
const localOriginPref = 1000

func neighborSetName(n string) string { return "xwan-nbr-" + n }
func outSetName(n string) string      { return "xwan-out-" + n }

// buildPolicies turns neighbours (with defaults applied) and the prefixes
// each may be sent (out, by neighbour name) into gobgp's policy objects.
//
// Import, in order:
//  1. locally originated routes (SetNetworks) are accepted, with a
//     LOCAL_PREF above any neighbour's: the global import policy also
//     filters what xwan adds itself;
//  2. per neighbour: accept with LOCAL_PREF = 1000 - metric, or reject
//     everything if AcceptDynamic is off;
//  3. default: reject (routes from nobody we know).
//
// Export, per neighbour: local routes whose prefix is in the neighbour's
// out set are accepted with MED = metric and, for a backup neighbour, the
// local AS prepended; everything else, including routes learned from the
// other neighbour, is rejected by default. Empty out sets are left out:
// gobgp refuses empty prefix sets.
func buildPolicies(ns []Neighbor, out map[string][]netip.Prefix) *api.SetPoliciesRequest {
	req := &api.SetPoliciesRequest{}
	imp := &api.Policy{Name: importPolicyName}
	exp := &api.Policy{Name: exportPolicyName}

	imp.Statements = append(imp.Statements, &api.Statement{
		Name:       "xwan-imp-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		// Above every neighbour's 1000-metric: a prefix xwan originates
		// stays xwan's even if a neighbour announces it too.
		Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT, LocalPref: &api.LocalPrefAction{Value: localOriginPref}},
	})

	for _, n := range ns {
		req.DefinedSets = append(req.DefinedSets, &api.DefinedSet{
			DefinedType: api.DefinedType_NEIGHBOR,
			Name:        neighborSetName(n.Name),
			List:        []string{netip.PrefixFrom(n.PeerAddress, n.PeerAddress.BitLen()).String()},
		})
		byNeighbor := &api.MatchSet{Type: api.MatchSet_ANY, Name: neighborSetName(n.Name)}

		st := &api.Statement{
			Name:       "xwan-imp-" + n.Name,
			Conditions: &api.Conditions{NeighborSet: byNeighbor},
			Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
		}
		if n.AcceptDynamic {
			st.Actions = &api.Actions{
				RouteAction: api.RouteAction_ACCEPT,
				LocalPref:   &api.LocalPrefAction{Value: LocalPref(n.Metric)},
			}
		}
		imp.Statements = append(imp.Statements, st)

		prefixes := out[n.Name]
		if len(prefixes) == 0 {
			continue
		}
		set := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: outSetName(n.Name)}
		for _, p := range prefixes {
			// Mask ranges are literal in gobgp: pin both ends to the
			// prefix length so that the set matches exactly this prefix.
			set.Prefixes = append(set.Prefixes, &api.Prefix{
				IpPrefix:      p.String(),
				MaskLengthMin: uint32(p.Bits()),
				MaskLengthMax: uint32(p.Bits()),
			})
		}
		req.DefinedSets = append(req.DefinedSets, set)
		actions := &api.Actions{
			RouteAction: api.RouteAction_ACCEPT,
			Med:         &api.MedAction{Type: api.MedAction_REPLACE, Value: int64(n.Metric)},
		}
		if k := prependCount(n, ns); k > 0 {
			actions.AsPrepend = &api.AsPrependAction{Asn: n.LocalASN, Repeat: uint32(k)}
		}
		exp.Statements = append(exp.Statements, &api.Statement{
			Name: "xwan-exp-" + n.Name,
			Conditions: &api.Conditions{
				NeighborSet: byNeighbor,
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: outSetName(n.Name)},
				RouteType:   api.Conditions_ROUTE_TYPE_LOCAL,
			},
			Actions: actions,
		})
	}
	req.Policies = []*api.Policy{imp, exp}
	return req
}

// policyAssignments binds the two policies to the global RIB, both with a
// default of reject.
func policyAssignments() []*api.PolicyAssignment {
	return []*api.PolicyAssignment{
		{
			Name:          "global",
			Direction:     api.PolicyDirection_IMPORT,
			Policies:      []*api.Policy{{Name: importPolicyName}},
			DefaultAction: api.RouteAction_REJECT,
		},
		{
			Name:          "global",
			Direction:     api.PolicyDirection_EXPORT,
			Policies:      []*api.Policy{{Name: exportPolicyName}},
			DefaultAction: api.RouteAction_REJECT,
		},
	}
}

// advertisePlan computes, per neighbour, the prefixes it may be sent:
// the default route if AdvertiseDefault, the networks if AdvertiseAll, of
// the neighbour's address family, capped at MaxAdvertised. To keep the cap
// from reshuffling what a neighbour already has (gobgp never withdraws a
// route that a tightened export policy no longer allows), prefixes in prev
// keep their place and new ones fill the remaining room in sorted order.
// suppressed counts the prefixes left out by the cap.
func advertisePlan(n Neighbor, networks []netip.Prefix, prev []netip.Prefix) (out []netip.Prefix, suppressed int) {
	v4 := n.PeerAddress.Is4()
	var want []netip.Prefix
	if n.AdvertiseDefault {
		if v4 {
			want = append(want, netip.PrefixFrom(netip.IPv4Unspecified(), 0))
		} else {
			want = append(want, netip.PrefixFrom(netip.IPv6Unspecified(), 0))
		}
	}
	if n.AdvertiseAll {
		for _, p := range networks {
			if p.Addr().Is4() == v4 && p.Bits() > 0 {
				want = append(want, p)
			}
		}
	}
	want = sortPrefixes(want)
	want = slices.Compact(want)
	if n.MaxAdvertised <= 0 || len(want) <= n.MaxAdvertised {
		return want, 0
	}
	wanted := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		wanted[p] = true
	}
	kept := make(map[netip.Prefix]bool)
	for _, p := range prev {
		if wanted[p] && len(out) < n.MaxAdvertised {
			out = append(out, p)
			kept[p] = true
		}
	}
	for _, p := range want {
		if len(out) >= n.MaxAdvertised {
			break
		}
		if !kept[p] {
			out = append(out, p)
		}
	}
	return sortPrefixes(out), len(want) - len(out)
}

// sortPrefixes orders by address, then by length: the default route first,
// then the networks in a stable order an operator can predict.
func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return ps
}
