package bgp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Event is one of SessionUp, SessionDown, RoutesChanged,
// PrefixLimitExceeded, NeighborRestarted or AdvertiseLimit. Every event
// carries its time; Kind is a stable name for logs and filters; Key groups
// events about the same neighbour (for notification throttling); Summary is
// one human-readable line.
type Event interface {
	When() time.Time
	Kind() string
	Key() string
	Summary() string
}

// Event kinds.
const (
	KindSessionUp           = "bgp_session_up"
	KindSessionDown         = "bgp_session_down"
	KindRoutesChanged       = "bgp_routes_changed"
	KindPrefixLimitExceeded = "bgp_prefix_limit_exceeded"
	KindNeighborRestarted   = "bgp_neighbor_restarted"
	KindAdvertiseLimit      = "bgp_advertise_limit"
)

// SessionUp: the session reached Established.
type SessionUp struct {
	Time     time.Time  `json:"time"`
	Neighbor string     `json:"neighbor"`
	Peer     netip.Addr `json:"peer"`
	PeerASN  uint32     `json:"peer_asn"`
}

// SessionDown: an Established session went down. Reason is as precise as
// gobgp can tell: "hold timer expired", "received NOTIFICATION cease/...",
// "sent NOTIFICATION cease/maximum number of prefixes reached", ...
type SessionDown struct {
	Time        time.Time  `json:"time"`
	Neighbor    string     `json:"neighbor"`
	Peer        netip.Addr `json:"peer"`
	Reason      string     `json:"reason"`
	PrefixLimit bool       `json:"prefix_limit,omitempty"`
}

// RoutesChanged is a batch of changes to the set of active (best) routes
// learned from neighbours: Added holds new or replaced best routes (a
// route whose next hop moved to the secondary appears here), Withdrawn the
// prefixes that no longer have any learned route.
type RoutesChanged struct {
	Time      time.Time `json:"time"`
	Added     []Route   `json:"added,omitempty"`
	Withdrawn []Route   `json:"withdrawn,omitempty"`
}

// PrefixLimitExceeded: a neighbour sent more than MaxReceived prefixes;
// gobgp sent Cease (maximum number of prefixes reached) and the session is
// down. RestartAt is when xwan re-enables it (zero if the policy is manual).
type PrefixLimitExceeded struct {
	Time      time.Time  `json:"time"`
	Neighbor  string     `json:"neighbor"`
	Peer      netip.Addr `json:"peer"`
	Limit     uint32     `json:"limit"`
	Manual    bool       `json:"manual,omitempty"`
	RestartAt time.Time  `json:"restart_at,omitzero"`
}

// NeighborRestarted: a neighbour stopped by the prefix limit was
// re-enabled, by the restart policy (Operator false) or by EnableNeighbor.
type NeighborRestarted struct {
	Time     time.Time `json:"time"`
	Neighbor string    `json:"neighbor"`
	Operator bool      `json:"operator,omitempty"`
}

// AdvertiseLimit: the prefixes to advertise to a neighbour reached
// AdvertiseWarnPercent of its MaxAdvertised (Reached false) or exceeded it
// (Reached true; Suppressed prefixes are not advertised).
type AdvertiseLimit struct {
	Time       time.Time `json:"time"`
	Neighbor   string    `json:"neighbor"`
	Count      int       `json:"count"`
	Limit      int       `json:"limit"`
	Suppressed int       `json:"suppressed,omitempty"`
	Reached    bool      `json:"reached"`
}

func (e SessionUp) When() time.Time           { return e.Time }
func (e SessionDown) When() time.Time         { return e.Time }
func (e RoutesChanged) When() time.Time       { return e.Time }
func (e PrefixLimitExceeded) When() time.Time { return e.Time }
func (e NeighborRestarted) When() time.Time   { return e.Time }
func (e AdvertiseLimit) When() time.Time      { return e.Time }

func (SessionUp) Kind() string           { return KindSessionUp }
func (SessionDown) Kind() string         { return KindSessionDown }
func (RoutesChanged) Kind() string       { return KindRoutesChanged }
func (PrefixLimitExceeded) Kind() string { return KindPrefixLimitExceeded }
func (NeighborRestarted) Kind() string   { return KindNeighborRestarted }
func (AdvertiseLimit) Kind() string      { return KindAdvertiseLimit }

func (e SessionUp) Key() string           { return "bgp/" + e.Neighbor }
func (e SessionDown) Key() string         { return "bgp/" + e.Neighbor }
func (e RoutesChanged) Key() string       { return "bgp/routes" }
func (e PrefixLimitExceeded) Key() string { return "bgp/" + e.Neighbor }
func (e NeighborRestarted) Key() string   { return "bgp/" + e.Neighbor }
func (e AdvertiseLimit) Key() string      { return "bgp/" + e.Neighbor }

func (e SessionUp) Summary() string {
	return fmt.Sprintf("BGP neighbor %s (%s, AS %d) is up", e.Neighbor, e.Peer, e.PeerASN)
}

func (e SessionDown) Summary() string {
	return fmt.Sprintf("BGP neighbor %s (%s) is down: %s", e.Neighbor, e.Peer, e.Reason)
}

func (e RoutesChanged) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "BGP routes: %d added, %d withdrawn", len(e.Added), len(e.Withdrawn))
	list := func(label string, rs []Route) {
		const shown = 5
		for i, r := range rs {
			if i == shown {
				fmt.Fprintf(&b, " (+%d more)", len(rs)-shown)
				break
			}
			sep := ", "
			if i == 0 {
				sep = "; " + label + " "
			}
			fmt.Fprintf(&b, "%s%s via %s", sep, r.Prefix, r.NextHop)
		}
	}
	list("added", e.Added)
	list("withdrawn", e.Withdrawn)
	return b.String()
}

func (e PrefixLimitExceeded) Summary() string {
	what := "restart at " + e.RestartAt.Format(time.RFC3339)
	if e.Manual {
		what = "stays down until re-enabled by an operator"
	}
	return fmt.Sprintf("BGP neighbor %s (%s) sent more than %d prefixes: session torn down, %s", e.Neighbor, e.Peer, e.Limit, what)
}

func (e NeighborRestarted) Summary() string {
	by := "by the prefix-limit restart policy"
	if e.Operator {
		by = "by an operator"
	}
	return fmt.Sprintf("BGP neighbor %s re-enabled %s", e.Neighbor, by)
}

func (e AdvertiseLimit) Summary() string {
	if e.Reached {
		return fmt.Sprintf("BGP neighbor %s: %d prefixes to advertise exceed the cap of %d; %d not advertised", e.Neighbor, e.Count, e.Limit, e.Suppressed)
	}
	return fmt.Sprintf("BGP neighbor %s: %d prefixes advertised, %d%% of the cap of %d", e.Neighbor, e.Count, e.Count*100/e.Limit, e.Limit)
}
