package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// eventQueue decouples gobgp's watcher from xwan's processing: gobgp's
// callback only appends (it must return quickly), the loop drains. Items
// are gobgp's *api.WatchEventResponse, or an Event raised outside the loop
// (so that OnEvent is only ever called from the loop, in order).
type eventQueue struct {
	mu     sync.Mutex
	items  []any
	wake   chan struct{}
	closed bool
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

func (q *eventQueue) push(ev any) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, ev)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns everything queued; ok is false once closed and drained.
func (q *eventQueue) take() (items []any, ok bool) {
	for {
		q.mu.Lock()
		items, q.items = q.items, nil
		closed := q.closed
		q.mu.Unlock()
		if len(items) > 0 {
			return items, true
		}
		if closed {
			return nil, false
		}
		<-q.wake
	}
}

func (s *Server) loop() {
	defer close(s.done)
	for {
		items, ok := s.queue.take()
		if !ok {
			return
		}
		for _, it := range items {
			switch ev := it.(type) {
			case Event:
				s.emit(ev)
			case *api.WatchEventResponse:
				switch {
				case ev.GetPeer() != nil:
					s.handlePeer(ev.GetPeer())
				case ev.GetTable() != nil:
					s.handlePaths(ev.GetTable().GetPaths())
				}
			}
		}
	}
}

func (s *Server) handlePeer(pe *api.WatchEventResponse_PeerEvent) {
	if pe.GetType() != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	st := pe.GetPeer().GetState()
	addr, err := netip.ParseAddr(st.GetNeighborAddress())
	if err != nil {
		return
	}
	n := s.byAddr[addr]
	if n == nil {
		return
	}
	now := s.now()
	s.mu.Lock()
	prev := n.state
	n.state, n.adminState = st.GetSessionState(), st.GetAdminState()
	up := n.state == api.PeerState_ESTABLISHED && prev != api.PeerState_ESTABLISHED
	down := prev == api.PeerState_ESTABLISHED && n.state != api.PeerState_ESTABLISHED
	if up {
		n.establishedAt = now
	}
	if down {
		n.establishedAt = time.Time{}
	}
	closing := s.closed
	s.mu.Unlock()

	switch {
	case up:
		s.log.Info("BGP session up", "neighbor", n.cfg.Name, "peer", addr)
		s.emit(SessionUp{Time: now, Neighbor: n.cfg.Name, Peer: addr, PeerASN: n.cfg.PeerASN})
	case down:
		reason, pfx := s.diag.takeDown(addr.String())
		pfx = pfx || st.GetAdminState() == api.PeerState_PFX_CT
		switch {
		case pfx:
			// gobgp reports either the Cease it sent or the socket
			// closing under it, whichever comes first: say what happened.
			reason = fmt.Sprintf("received more than %d prefixes: sent NOTIFICATION cease/maximum number of prefixes reached", n.cfg.MaxReceived)
			s.diag.setError(addr.String(), reason)
		case reason == "":
			reason = "unknown"
		}
		s.log.Warn("BGP session down", "neighbor", n.cfg.Name, "peer", addr, "reason", reason)
		s.emit(SessionDown{Time: now, Neighbor: n.cfg.Name, Peer: addr, Reason: reason, PrefixLimit: pfx})
		if pfx && !closing {
			s.prefixLimitHit(n, now)
		}
	}
}

// prefixLimitHit follows the neighbour's restart policy: gobgp leaves the
// peer idle (PFX_CT) forever, so xwan re-enables it after the delay.
func (s *Server) prefixLimitHit(n *neighbor, now time.Time) {
	ev := PrefixLimitExceeded{Time: now, Neighbor: n.cfg.Name, Peer: n.cfg.PeerAddress, Limit: n.cfg.MaxReceived, Manual: n.cfg.PrefixLimitRestart.Manual}
	if !ev.Manual {
		delay := n.cfg.PrefixLimitRestart.delay()
		ev.RestartAt = now.Add(delay)
		s.mu.Lock()
		if n.restartTimer != nil {
			n.restartTimer.Stop()
		}
		n.restartAt = ev.RestartAt
		n.restartTimer = time.AfterFunc(delay, func() { s.restartAfterLimit(n) })
		s.mu.Unlock()
	}
	s.log.Warn(ev.Summary())
	s.emit(ev)
}

func (s *Server) restartAfterLimit(n *neighbor) {
	s.mu.Lock()
	if !s.running || n.restartTimer == nil {
		s.mu.Unlock()
		return
	}
	n.restartTimer = nil
	n.restartAt = time.Time{}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.bgp.EnablePeer(ctx, &api.EnablePeerRequest{Address: n.cfg.PeerAddress.String()}); err != nil {
		s.log.Error("re-enable after prefix limit", "neighbor", n.cfg.Name, "err", err)
		return
	}
	s.log.Info("neighbor re-enabled after prefix limit", "neighbor", n.cfg.Name)
	s.emitAsync(NeighborRestarted{Time: s.now(), Neighbor: n.cfg.Name})
}

// handlePaths turns a batch of best-path changes into sink calls and one
// RoutesChanged event. Only routes learned from neighbours go to the sinks:
// xwan's own networks are where traffic comes from, not where it goes.
func (s *Server) handlePaths(paths []*api.Path) {
	var ev RoutesChanged
	for _, p := range paths {
		if p.GetNlri() == nil {
			continue // end-of-RIB marker
		}
		r, err := decodePath(p)
		if err != nil {
			s.log.Debug("ignoring path", "err", err)
			continue
		}
		s.mu.Lock()
		old, had := s.best[r.Prefix]
		var n *neighbor
		if !r.Local {
			n = s.byAddr[r.Peer]
		}
		s.mu.Unlock()

		if p.GetIsWithdraw() || r.Local || n == nil {
			if had {
				s.withdraw(old)
				ev.Withdrawn = append(ev.Withdrawn, old)
			}
			continue
		}
		r.Neighbor, r.Metric, r.Best = n.cfg.Name, n.cfg.Metric, true
		if had && old.NextHop == r.NextHop && old.Neighbor == r.Neighbor {
			s.mu.Lock()
			s.best[r.Prefix] = r // attributes changed, forwarding did not
			s.mu.Unlock()
			continue
		}
		if had {
			s.countInstalled(old.Neighbor, -1)
		}
		s.mu.Lock()
		s.best[r.Prefix] = r
		s.mu.Unlock()
		s.countInstalled(r.Neighbor, +1)
		for _, sink := range s.sinks {
			if err := sink.RouteAdded(r); err != nil {
				s.met.sinkErrors.Inc()
				s.log.Error("route sink", "prefix", r.Prefix, "err", err)
			}
		}
		ev.Added = append(ev.Added, r)
	}
	if len(ev.Added)+len(ev.Withdrawn) > 0 {
		ev.Time = s.now()
		s.emit(ev)
	}
}

func (s *Server) withdraw(r Route) {
	s.mu.Lock()
	delete(s.best, r.Prefix)
	s.mu.Unlock()
	s.countInstalled(r.Neighbor, -1)
	for _, sink := range s.sinks {
		if err := sink.RouteWithdrawn(r); err != nil {
			s.met.sinkErrors.Inc()
			s.log.Error("route sink", "prefix", r.Prefix, "err", err)
		}
	}
}

func (s *Server) countInstalled(name string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.byName[name]; n != nil {
		n.installed += d
	}
}
