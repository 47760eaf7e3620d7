package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the daemon's hooks into a Server.
type Options struct {
	// Logger receives xwan's and gobgp's log lines; nil means slog.Default().
	Logger *slog.Logger
	// Registerer gets the xwan_bgp_* metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// OnEvent receives events in order, from one goroutine. It must hand
	// off quickly (e.g. to a channel): it delays route installation.
	OnEvent func(Event)
	// Sinks receive best-route changes besides the kernel (when
	// Config.Kernel.Install is set), e.g. the data plane's prefix map.
	Sinks []RouteSink
	// Now is the clock for event times; nil means time.Now.
	Now func() time.Time
}

// Server runs the BGP neighbours of one Config. The set of neighbours is
// fixed for the life of a Server: to change neighbours, Close it and start
// a new one (sessions reset, which a changed neighbour needs anyway).
type Server struct {
	cfg    Config // with defaults
	log    *slog.Logger
	now    func() time.Time
	notify func(Event)
	diag   *diagnostics
	kernel *KernelRoutes
	sinks  []RouteSink
	met    *metrics

	byAddr map[netip.Addr]*neighbor
	byName map[string]*neighbor
	order  []*neighbor

	// updMu serialises the operations that change what is advertised.
	updMu     sync.Mutex
	networks  []netip.Prefix
	announced map[netip.Prefix]bool

	mu      sync.Mutex // guards the fields below and every neighbor's state
	started bool
	running bool // Start succeeded and Close not called
	closed  bool
	best    map[netip.Prefix]Route // learned routes handed to the sinks
	swept   int

	bgp    *server.BgpServer
	cancel context.CancelFunc
	queue  *eventQueue
	done   chan struct{}
}

// neighbor is the runtime state of one configured neighbour; the fields
// after cfg are guarded by Server.mu.
type neighbor struct {
	cfg Neighbor

	out        []netip.Prefix // prefixes it may be sent (export prefix set)
	suppressed int            // prefixes left out by MaxAdvertised
	warned     bool           // AdvertiseLimit warning sent
	reached    bool           // AdvertiseLimit reached sent

	state         api.PeerState_SessionState
	adminState    api.PeerState_AdminState
	establishedAt time.Time
	installed     int // best routes from this neighbour

	restartTimer *time.Timer
	restartAt    time.Time
}

// New validates cfg and prepares a Server; nothing runs until Start.
func New(cfg Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		log:       opts.Logger,
		now:       opts.Now,
		notify:    opts.OnEvent,
		sinks:     slices.Clone(opts.Sinks),
		byAddr:    map[netip.Addr]*neighbor{},
		byName:    map[string]*neighbor{},
		announced: map[netip.Prefix]bool{},
		best:      map[netip.Prefix]Route{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "bgp")
	if s.now == nil {
		s.now = time.Now
	}
	if s.notify == nil {
		s.notify = func(Event) {}
	}
	s.diag = newDiagnostics(s.now)
	if cfg.Kernel.Install {
		s.kernel = NewKernelRoutes(cfg.Kernel.Table, cfg.Kernel.Priority)
		s.sinks = append([]RouteSink{s.kernel}, s.sinks...)
	}
	for _, nc := range cfg.Neighbors {
		n := &neighbor{cfg: nc}
		s.byAddr[nc.PeerAddress] = n
		s.byName[nc.Name] = n
		s.order = append(s.order, n)
	}
	s.met = newMetrics(s)
	if opts.Registerer != nil {
		if err := s.met.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("bgp: metrics: %w", err)
		}
	}
	return s, nil
}

// Start sweeps stale xwan routes from the kernel, starts the BGP speaker,
// installs the policies, originates the networks and adds the neighbours.
func (s *Server) Start(ctx context.Context) error {
	s.updMu.Lock()
	defer s.updMu.Unlock()
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("bgp: already started")
	}
	s.started = true
	s.mu.Unlock()

	if s.kernel != nil {
		n, err := s.kernel.Sweep()
		if err != nil {
			return fmt.Errorf("bgp: sweep stale routes: %w", err)
		}
		s.mu.Lock()
		s.swept = n
		s.mu.Unlock()
		if n > 0 {
			s.log.Info("removed stale routes left by an earlier run", "count", n, "protocol", int(RouteProtocol), "table", s.cfg.Kernel.Table)
		}
	}

	s.warnMPTCP()
	s.bgp = server.NewBgpServer(server.LoggerOption(&gobgpLogger{log: s.log, diag: s.diag}))
	go s.bgp.Serve()
	if err := s.setup(ctx); err != nil {
		s.stopGobgp()
		return err
	}
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	s.log.Info("BGP started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID, "neighbors", len(s.order))
	return nil
}

func (s *Server) setup(ctx context.Context) error {
	g := &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: int32(s.cfg.ListenPort),
	}
	for _, a := range s.cfg.ListenAddresses {
		g.ListenAddresses = append(g.ListenAddresses, a.String())
	}
	if err := s.bgp.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		return fmt.Errorf("bgp: start: %w", err)
	}

	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.queue = newEventQueue()
	s.done = make(chan struct{})
	// One watcher for peer and best-path events keeps them in gobgp's order.
	err := s.bgp.WatchEvent(wctx, &api.WatchEventRequest{
		Peer:  &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST, Init: true}}},
	}, func(ev *api.WatchEventResponse) { s.queue.push(ev) })
	if err != nil {
		return fmt.Errorf("bgp: watch: %w", err)
	}
	go s.loop()

	// The policies exist before their assignment, and both before any
	// route or neighbour: nothing leaks out unfiltered.
	if err := s.bgp.SetPolicies(ctx, buildPolicies(s.cfg.Neighbors, nil)); err != nil {
		return fmt.Errorf("bgp: policies: %w", err)
	}
	for _, a := range policyAssignments() {
		if err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("bgp: policy assignment: %w", err)
		}
	}
	if err := s.syncAdvertised(ctx); err != nil {
		return err
	}
	for _, n := range s.order {
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: peerRequest(n.cfg)}); err != nil {
			return fmt.Errorf("bgp: neighbor %q: %w", n.cfg.Name, err)
		}
	}
	return nil
}

// warnMPTCP: gobgp listens through net.ListenConfig, which Go 1.24+ makes
// an MPTCP socket, and MPTCP sockets refuse TCP_MD5SIG. gobgp then only
// logs a warning and its listener drops every signed SYN: sessions come up
// only when xwan dials out. The binary must be built with
// `//go:debug multipathtcp=0` (cmd/xwand is); say so loudly if it is not.
func (s *Server) warnMPTCP() {
	if s.cfg.ListenPort <= 0 || !(&net.ListenConfig{}).MultipathTCP() {
		return
	}
	for _, n := range s.cfg.Neighbors {
		if n.Password != "" {
			s.log.Warn("TCP MD5 cannot be set on the BGP listener (this binary listens with MPTCP); " +
				"only sessions xwan dials itself will come up. Build with //go:debug multipathtcp=0 or run with GODEBUG=multipathtcp=0")
			return
		}
	}
}

// peerRequest is the gobgp peer for a neighbour (defaults applied).
func peerRequest(n Neighbor) *api.Peer {
	fam := familyOf(n.PeerAddress)
	afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
	if n.MaxReceived > 0 {
		// gobgp logs a warning at 80 %; over the limit it sends Cease
		// and leaves the peer idle (admin state PFX_CT).
		afi.PrefixLimits = &api.PrefixLimit{Family: fam, MaxPrefixes: n.MaxReceived, ShutdownThresholdPct: 80}
	}
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.PeerAddress.String(),
			PeerAsn:         n.PeerASN,
			LocalAsn:        n.LocalASN,
			AuthPassword:    n.Password,
			Description:     n.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      uint64(n.ConnectRetry / time.Second),
			HoldTime:          uint64(n.HoldTime / time.Second),
			KeepaliveInterval: uint64(n.Keepalive / time.Second),
		}},
		Transport: &api.Transport{RemotePort: uint32(n.PeerPort)},
		AfiSafis:  []*api.AfiSafi{afi},
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	return p
}

// Close stops BGP (neighbours get a Cease), withdraws every learned route
// from the sinks (the kernel routes go) and waits for the event loop.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.running {
		// Never started, already closed, or Start failed and cleaned up.
		s.closed = true
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.running = false
	for _, n := range s.order {
		if n.restartTimer != nil {
			n.restartTimer.Stop()
			n.restartTimer = nil
		}
	}
	s.mu.Unlock()

	s.stopGobgp()

	s.mu.Lock()
	best := s.best
	s.best = map[netip.Prefix]Route{}
	s.mu.Unlock()
	var errs []error
	for _, r := range best {
		for _, sink := range s.sinks {
			if err := sink.RouteWithdrawn(r); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// stopGobgp stops the speaker, then the watcher and the event loop.
func (s *Server) stopGobgp() {
	s.bgp.Stop()
	if s.cancel != nil {
		s.cancel()
		s.queue.close()
		<-s.done
		s.cancel = nil
	}
}

// SetNetworks replaces the networks xwan originates (the site's prefixes,
// remote sites' prefixes: whatever the daemon decides). Neighbours with
// AdvertiseAll are sent them, capped at MaxAdvertised; a default route is
// never taken from here (AdvertiseDefault decides that). Can be called
// before or after Start.
func (s *Server) SetNetworks(ctx context.Context, prefixes []netip.Prefix) error {
	nets := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("bgp: invalid network %v", p)
		}
		if p.Bits() == 0 {
			continue
		}
		nets = append(nets, p.Masked())
	}
	nets = slices.Compact(sortPrefixes(nets))

	s.updMu.Lock()
	defer s.updMu.Unlock()
	s.networks = nets
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		return nil
	}
	return s.syncAdvertised(ctx)
}

// applyPolicies computes every neighbour's out set and loads the policies.
// Called with updMu held (or before the server runs).
func (s *Server) applyPolicies(ctx context.Context) error {
	var events []Event
	out := map[string][]netip.Prefix{}
	s.mu.Lock()
	for _, n := range s.order {
		prefixes, suppressed := advertisePlan(n.cfg, s.networks, n.out)
		n.out, n.suppressed = prefixes, suppressed
		out[n.cfg.Name] = prefixes
		events = append(events, s.advertiseLimitEvents(n)...)
	}
	s.mu.Unlock()
	if err := s.bgp.SetPolicies(ctx, buildPolicies(s.cfg.Neighbors, out)); err != nil {
		return fmt.Errorf("bgp: policies: %w", err)
	}
	for _, e := range events {
		s.emitAsync(e)
	}
	return nil
}

// advertiseLimitEvents raises the 80 % warning and the cap event once
// each, and re-arms them when the count drops. Called with mu held.
func (s *Server) advertiseLimitEvents(n *neighbor) []Event {
	limit := n.cfg.MaxAdvertised
	if limit <= 0 {
		return nil
	}
	want := len(n.out) + n.suppressed
	var evs []Event
	if want*100 >= limit*AdvertiseWarnPercent {
		if !n.warned {
			n.warned = true
			evs = append(evs, AdvertiseLimit{Time: s.now(), Neighbor: n.cfg.Name, Count: want, Limit: limit})
		}
	} else {
		n.warned = false
	}
	if n.suppressed > 0 {
		if !n.reached {
			n.reached = true
			evs = append(evs, AdvertiseLimit{Time: s.now(), Neighbor: n.cfg.Name, Count: want, Limit: limit, Suppressed: n.suppressed, Reached: true})
		}
	} else {
		n.reached = false
	}
	for _, e := range evs {
		s.log.Warn(e.Summary())
	}
	return evs
}

// syncAdvertised brings gobgp in line with s.networks. Order matters:
// withdraw what goes while the old policy still lets the withdrawal out,
// then load the new policy, then add what is new so it meets the new
// policy; finally, neighbours whose out set gained a route that already
// existed (room freed under MaxAdvertised) get a soft reset out, because
// gobgp does not re-evaluate existing routes when a policy changes.
func (s *Server) syncAdvertised(ctx context.Context) error {
	want := map[netip.Prefix]bool{}
	for _, p := range s.networks {
		want[p] = true
	}
	for _, n := range s.order {
		if n.cfg.AdvertiseDefault {
			want[netip.PrefixFrom(defaultAddr(n.cfg.PeerAddress), 0)] = true
		}
	}
	var errs []error
	for p := range s.announced {
		if want[p] {
			continue
		}
		if err := s.deletePath(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(s.announced, p)
	}

	before := map[string][]netip.Prefix{}
	s.mu.Lock()
	for _, n := range s.order {
		before[n.cfg.Name] = slices.Clone(n.out)
	}
	s.mu.Unlock()
	if err := s.applyPolicies(ctx); err != nil {
		return errors.Join(append(errs, err)...)
	}

	existed := maps.Clone(s.announced)
	for p := range want {
		if s.announced[p] {
			continue
		}
		if err := s.addPath(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		s.announced[p] = true
	}

	s.mu.Lock()
	var reset []netip.Addr
	for _, n := range s.order {
		old := before[n.cfg.Name]
		for _, p := range n.out {
			if existed[p] && !slices.Contains(old, p) {
				reset = append(reset, n.cfg.PeerAddress)
				break
			}
		}
	}
	s.mu.Unlock()
	for _, a := range reset {
		if err := s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_OUT}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: soft reset out %s: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

func defaultAddr(peer netip.Addr) netip.Addr {
	if peer.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

func (s *Server) addPath(ctx context.Context, p netip.Prefix) error {
	path, err := localPath(p)
	if err != nil {
		return err
	}
	if _, err := s.bgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		return fmt.Errorf("bgp: originate %s: %w", p, err)
	}
	return nil
}

func (s *Server) deletePath(ctx context.Context, p netip.Prefix) error {
	path, err := localPath(p)
	if err != nil {
		return err
	}
	if err := s.bgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: path.Family, Path: path}); err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", p, err)
	}
	return nil
}

// EnableNeighbor re-enables a neighbour stopped by the prefix limit (or by
// DisableNeighbor) now, cancelling a pending automatic restart.
func (s *Server) EnableNeighbor(ctx context.Context, name string) error {
	n, err := s.neighborByName(name)
	if err != nil {
		return err
	}
	s.cancelRestart(n)
	if err := s.bgp.EnablePeer(ctx, &api.EnablePeerRequest{Address: n.cfg.PeerAddress.String()}); err != nil {
		return fmt.Errorf("bgp: enable %q: %w", name, err)
	}
	s.emitAsync(NeighborRestarted{Time: s.now(), Neighbor: name, Operator: true})
	return nil
}

// DisableNeighbor shuts a session down administratively (Cease,
// administrative shutdown) until EnableNeighbor.
func (s *Server) DisableNeighbor(ctx context.Context, name, reason string) error {
	n, err := s.neighborByName(name)
	if err != nil {
		return err
	}
	s.cancelRestart(n)
	if err := s.bgp.DisablePeer(ctx, &api.DisablePeerRequest{Address: n.cfg.PeerAddress.String(), Communication: reason}); err != nil {
		return fmt.Errorf("bgp: disable %q: %w", name, err)
	}
	return nil
}

// cancelRestart stops a pending automatic restart of a neighbour.
func (s *Server) cancelRestart(n *neighbor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.restartTimer != nil {
		n.restartTimer.Stop()
		n.restartTimer = nil
		n.restartAt = time.Time{}
	}
}

func (s *Server) neighborByName(name string) (*neighbor, error) {
	n := s.byName[name]
	if n == nil {
		return nil, fmt.Errorf("bgp: no neighbor %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil, errors.New("bgp: not running")
	}
	return n, nil
}

// SweptRoutes is how many stale xwan routes Start removed from the kernel.
func (s *Server) SweptRoutes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.swept
}

// emit delivers an event; only the event loop calls it.
func (s *Server) emit(e Event) {
	s.met.event(e)
	s.notify(e)
}

// emitAsync queues an event raised outside the event loop.
func (s *Server) emitAsync(e Event) { s.queue.push(e) }
