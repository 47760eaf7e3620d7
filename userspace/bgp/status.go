package bgp

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// NeighborStatus is what `xwanctl bgp` shows for one neighbour.
type NeighborStatus struct {
	Name     string     `json:"name"`
	Peer     netip.Addr `json:"peer"`
	PeerASN  uint32     `json:"peer_asn"`
	LocalASN uint32     `json:"local_asn"`
	// State is the BGP FSM state: idle, connect, active, opensent,
	// openconfirm or established.
	State string `json:"state"`
	// AdminState is up, down (DisableNeighbor) or prefix-limit (stopped
	// by MaxReceived, see RestartAt).
	AdminState string `json:"admin_state"`
	// Since is when the session was established; Uptime is the time since.
	Since  time.Time     `json:"since,omitzero"`
	Uptime time.Duration `json:"uptime,omitempty"`
	// HoldTime and Keepalive are the negotiated timers while established,
	// the configured ones otherwise.
	HoldTime     time.Duration `json:"hold_time"`
	Keepalive    time.Duration `json:"keepalive"`
	ConnectRetry time.Duration `json:"connect_retry"`
	Metric       int           `json:"metric"`
	LocalPref    uint32        `json:"local_pref"`
	// PrefixesReceived counts what the neighbour sent (before policy),
	// PrefixesAccepted what the import policy let in, PrefixesAdvertised
	// what xwan sends it, RoutesActive the routes from it that are best
	// (and installed).
	PrefixesReceived   uint64 `json:"prefixes_received"`
	PrefixesAccepted   uint64 `json:"prefixes_accepted"`
	PrefixesAdvertised uint64 `json:"prefixes_advertised"`
	RoutesActive       int    `json:"routes_active"`
	MaxReceived        uint32 `json:"max_received,omitempty"`
	MaxAdvertised      int    `json:"max_advertised,omitempty"`
	// AdvertiseSuppressed is how many prefixes MaxAdvertised holds back.
	AdvertiseSuppressed int `json:"advertise_suppressed,omitempty"`
	// Flaps counts sessions that went down soon after coming up (gobgp's
	// flop counter).
	Flaps uint32 `json:"flaps,omitempty"`
	// LastError is the latest reason the session went down or could not
	// be established, as far as gobgp can tell.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// RestartAt is when a neighbour stopped by the prefix limit will be
	// re-enabled (zero: not pending).
	RestartAt time.Time `json:"restart_at,omitzero"`
}

// Status reports every neighbour, in configuration order.
func (s *Server) Status(ctx context.Context) ([]NeighborStatus, error) {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		return nil, errors.New("bgp: not running")
	}
	peers := map[string]*api.Peer{}
	err := s.bgp.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		peers[p.GetConf().GetNeighborAddress()] = p
	})
	if err != nil {
		return nil, err
	}
	// gobgp's own "accepted" counter ignores global import policies (it
	// only sees per-peer ones): count the neighbours' paths in the RIB.
	accepted, err := s.acceptedCounts(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]NeighborStatus, 0, len(s.order))
	for _, n := range s.order {
		c := n.cfg
		st := NeighborStatus{
			Name: c.Name, Peer: c.PeerAddress, PeerASN: c.PeerASN, LocalASN: c.LocalASN,
			State: "idle", AdminState: "up",
			HoldTime: c.HoldTime, Keepalive: c.Keepalive, ConnectRetry: c.ConnectRetry,
			Metric: c.Metric, LocalPref: LocalPref(c.Metric),
			MaxReceived: c.MaxReceived, MaxAdvertised: c.MaxAdvertised,
		}
		if p := peers[c.PeerAddress.String()]; p != nil {
			ps := p.GetState()
			st.State = sessionStateName(ps.GetSessionState())
			st.AdminState = adminStateName(ps.GetAdminState())
			st.Flaps = ps.GetFlops()
			if t := p.GetTimers().GetState(); t != nil && ps.GetSessionState() == api.PeerState_ESTABLISHED {
				st.HoldTime = time.Duration(t.GetNegotiatedHoldTime()) * time.Second
				st.Keepalive = time.Duration(t.GetKeepaliveInterval()) * time.Second
			}
			for _, a := range p.GetAfiSafis() {
				if as := a.GetState(); as != nil {
					st.PrefixesReceived += as.GetReceived()
					st.PrefixesAdvertised += as.GetAdvertised()
				}
			}
		}
		st.PrefixesAccepted = accepted[c.PeerAddress]
		st.LastError, st.LastErrorAt = s.diag.lastError(c.PeerAddress.String())
		s.mu.Lock()
		if !n.establishedAt.IsZero() && st.State == "established" {
			st.Since = n.establishedAt
			st.Uptime = now.Sub(n.establishedAt).Truncate(time.Second)
		}
		st.RoutesActive = n.installed
		st.AdvertiseSuppressed = n.suppressed
		st.RestartAt = n.restartAt
		s.mu.Unlock()
		out = append(out, st)
	}
	return out, nil
}

func (s *Server) families() []*api.Family {
	seen := map[bool]bool{}
	var out []*api.Family
	for _, n := range s.order {
		v4 := n.cfg.PeerAddress.Is4()
		if !seen[v4] {
			seen[v4] = true
			out = append(out, familyOf(n.cfg.PeerAddress))
		}
	}
	return out
}

// acceptedCounts counts, per peer, the paths in the global RIB.
func (s *Server) acceptedCounts(ctx context.Context) (map[netip.Addr]uint64, error) {
	out := map[netip.Addr]uint64{}
	for _, fam := range s.families() {
		err := s.bgp.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				if a, err := netip.ParseAddr(p.GetNeighborIp()); err == nil {
					out[a]++
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sessionStateName(s api.PeerState_SessionState) string {
	if s == api.PeerState_UNKNOWN {
		return "idle"
	}
	return strings.ToLower(s.String())
}

func adminStateName(s api.PeerState_AdminState) string {
	switch s {
	case api.PeerState_DOWN:
		return "down"
	case api.PeerState_PFX_CT:
		return "prefix-limit"
	}
	return "up"
}

// Routes lists the BGP table for `xwanctl routes`: every path per prefix
// (xwan's own and learned, the best one marked), then the routes received
// from neighbours whose routes are not accepted (Rejected).
func (s *Server) Routes(ctx context.Context) ([]Route, error) {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		return nil, errors.New("bgp: not running")
	}
	var out []Route
	for _, fam := range s.families() {
		err := s.bgp.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam, SortType: api.ListPathRequest_PREFIX}, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				if r, err := decodePath(p); err == nil {
					out = append(out, s.named(r))
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	for _, n := range s.order {
		if n.cfg.AcceptDynamic {
			continue
		}
		err := s.bgp.ListPath(ctx, &api.ListPathRequest{
			TableType: api.TableType_ADJ_IN, Name: n.cfg.PeerAddress.String(),
			Family: familyOf(n.cfg.PeerAddress), SortType: api.ListPathRequest_PREFIX,
		}, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				if r, err := decodePath(p); err == nil {
					r = s.named(r)
					r.Best, r.Rejected = false, true
					out = append(out, r)
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b Route) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		if c := a.Prefix.Bits() - b.Prefix.Bits(); c != 0 {
			return c
		}
		switch {
		case a.Best && !b.Best:
			return -1
		case b.Best && !a.Best:
			return 1
		}
		return 0
	})
	return out, nil
}

func (s *Server) named(r Route) Route {
	if n := s.byAddr[r.Peer]; n != nil && !r.Local {
		r.Neighbor, r.Metric = n.cfg.Name, n.cfg.Metric
	}
	return r
}
