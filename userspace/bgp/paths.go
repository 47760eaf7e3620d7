package bgp

import (
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Route is one path of the BGP table as xwan sees it.
type Route struct {
	Prefix  netip.Prefix `json:"prefix"`
	NextHop netip.Addr   `json:"next_hop,omitzero"`
	// Neighbor is the name of the neighbour it was learned from; empty for
	// xwan's own (Local) routes.
	Neighbor string     `json:"neighbor,omitempty"`
	Peer     netip.Addr `json:"peer,omitzero"`
	// Metric is the neighbour's configured metric (0 for local routes).
	Metric    int      `json:"metric,omitempty"`
	LocalPref uint32   `json:"local_pref,omitempty"`
	MED       uint32   `json:"med,omitempty"`
	ASPath    []uint32 `json:"as_path,omitempty"`
	// Best marks the active route for its prefix.
	Best bool `json:"best"`
	// Local marks xwan's own routes (SetNetworks, the default route).
	Local bool `json:"local,omitempty"`
	// Rejected marks a route received from a neighbour whose routes are
	// not accepted (AcceptDynamic off): it is listed, never used.
	Rejected bool      `json:"rejected,omitempty"`
	Age      time.Time `json:"since,omitzero"`
}

func familyOf(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// localPath is the gobgp path for a prefix xwan originates. The next hop
// is left unspecified: gobgp puts the session's own address there for eBGP.
func localPath(p netip.Prefix) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	if err != nil {
		return nil, err
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	if err != nil {
		return nil, err
	}
	var nh proto.Message
	if p.Addr().Is4() {
		nh = &api.NextHopAttribute{NextHop: "0.0.0.0"}
	} else {
		nh = &api.MpReachNLRIAttribute{
			Family:   familyOf(p.Addr()),
			NextHops: []string{"::"},
			Nlris:    []*anypb.Any{nlri},
		}
	}
	nhAny, err := anypb.New(nh)
	if err != nil {
		return nil, err
	}
	return &api.Path{
		Family: familyOf(p.Addr()),
		Nlri:   nlri,
		Pattrs: []*anypb.Any{origin, nhAny},
	}, nil
}

// decodePath reads the fields xwan uses out of a gobgp path. Neighbour
// names are filled in by the caller.
func decodePath(p *api.Path) (Route, error) {
	var r Route
	m, err := p.GetNlri().UnmarshalNew()
	if err != nil {
		return r, fmt.Errorf("nlri: %w", err)
	}
	pfx, ok := m.(*api.IPAddressPrefix)
	if !ok {
		return r, fmt.Errorf("nlri: unexpected %T", m)
	}
	addr, err := netip.ParseAddr(pfx.Prefix)
	if err != nil {
		return r, fmt.Errorf("nlri: %w", err)
	}
	r.Prefix = netip.PrefixFrom(addr, int(pfx.PrefixLen)).Masked()
	for _, a := range p.GetPattrs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue // an attribute xwan does not need
		}
		switch v := m.(type) {
		case *api.NextHopAttribute:
			r.NextHop, _ = netip.ParseAddr(v.NextHop)
		case *api.MpReachNLRIAttribute:
			// The first next hop is the global one; a second one would be
			// IPv6 link-local.
			if len(v.NextHops) > 0 {
				r.NextHop, _ = netip.ParseAddr(v.NextHops[0])
			}
		case *api.LocalPrefAttribute:
			r.LocalPref = v.LocalPref
		case *api.MultiExitDiscAttribute:
			r.MED = v.Med
		case *api.AsPathAttribute:
			for _, seg := range v.Segments {
				r.ASPath = append(r.ASPath, seg.Numbers...)
			}
		}
	}
	r.Best = p.Best
	// gobgp gives paths it originated a source without an address, which
	// it prints as "<nil>".
	if peer, err := netip.ParseAddr(p.NeighborIp); err == nil && !peer.IsUnspecified() {
		r.Peer = peer
	} else {
		r.Local = true
	}
	if p.Age != nil {
		r.Age = p.Age.AsTime()
	}
	return r, nil
}
