// Package bgp runs xwan's BGP neighbours ("cloud interconnect"): an
// in-process gobgp/v3 speaker, the route policies that make one neighbour
// the primary and the other the secondary, received- and advertised-prefix
// limits, and the hand-off of learned best routes to the kernel (netlink) and
// to any other RouteSink such as the data plane's destination-prefix map.
//
// The package is a library: cmd/xwand builds a Config from its YAML, calls
// New and Start, feeds the networks to advertise with SetNetworks, and
// exposes Status and Routes through its control API. Events (session up and
// down, routes added and withdrawn, prefix limits) arrive through the
// Options.OnEvent callback; Prometheus metrics are registered on the
// registry passed in Options.Registerer.
//
// How the primary/secondary choice is expressed on the wire, and why, is
// described in docs/bgp.md; in short:
//
//   - outbound (traffic from xwan to the cloud): the import policy gives every
//     route learned from a neighbour LOCAL_PREF = 1000 - metric, so the
//     neighbour with the lower metric wins for every prefix both announce;
//   - inbound (traffic from the cloud to xwan): every route advertised to a
//     neighbour carries MED = metric, and routes advertised to a neighbour
//     whose metric is worse than the best configured metric are AS-path
//     prepended (Neighbor.Prepend times, default 2). AS-path length is what
//     Azure ExpressRoute honours; MED covers peers that compare it.
package bgp
