package pathsel

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/xwan-dev/xwan/userspace/probe"
)

// Path describes one path (local WAN link, remote endpoint) to a site.
type Path struct {
	ID   uint16 // the gateway's path id (kernel paths map), > 0
	Site uint16 // the remote site's id, > 0
	Link uint8  // the local WAN link's id, > 0 (0 names table 0)
	// Precedence of the local link. Unknown counts as Active.
	Precedence Precedence
	// RemotePrecedence of the peer's link, when known (Unknown: Active).
	// Paths are ranked by (local, remote) precedence: a passive endpoint
	// of the peer is used only when none of its active ones is usable
	// from the best local link.
	RemotePrecedence Precedence
	// Bandwidth of the local link, bit/s (its upstream): the weight of
	// active/active. 0 counts as 1.
	Bandwidth uint64
}

// Output is what a call changed: events to publish, in order, and the
// sites whose tables must be written to the kernel (Tables).
type Output struct {
	Events  []Event
	Changed []uint16
}

func (o *Output) add(evs ...Event) { o.Events = append(o.Events, evs...) }

func (o *Output) changed(site uint16) {
	if !slices.Contains(o.Changed, site) {
		o.Changed = append(o.Changed, site)
	}
}

type pathEntry struct {
	Path
	h health
}

type site struct {
	id       uint16
	th       Thresholds
	paths    []*pathEntry // by id
	selected []uint16     // table 0's paths, sorted
	sets     map[uint8][]uint16
	tables   map[uint8][]uint16  // link id -> table; 0 = all links
	last     map[uint8][]uint16  // last table per link, kept while it is absent, for slot reuse
	backends map[uint8][]Backend // what tables[link] was built from
	plan     plan
}

// Selector decides, per remote site, which paths take which flows. It is
// safe for concurrent use; every method takes the time from the caller.
type Selector struct {
	mu       sync.Mutex
	cfg      Config
	sites    map[uint16]*site
	paths    map[uint16]*pathEntry
	nextEval time.Time
}

// New returns a Selector; zero fields of cfg take the defaults.
func New(cfg Config) (*Selector, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &Selector{cfg: cfg, sites: map[uint16]*site{}, paths: map[uint16]*pathEntry{}}, nil
}

// Config returns the configuration in use, defaults applied.
func (s *Selector) Config() Config { return s.cfg }

func (s *Selector) site(id uint16) *site {
	st := s.sites[id]
	if st == nil {
		st = &site{id: id, th: s.cfg.Thresholds, sets: map[uint8][]uint16{}, tables: map[uint8][]uint16{}, last: map[uint8][]uint16{}, backends: map[uint8][]Backend{}}
		s.sites[id] = st
	}
	return st
}

// SetThresholds sets a site's thresholds; zero fields take the
// Selector's.
func (s *Selector) SetThresholds(siteID uint16, t Thresholds) error {
	t = t.withDefaults(s.cfg.Thresholds)
	if err := t.check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.site(siteID).th = t
	return nil
}

// AddPath adds a path. It starts Down: Connected(true) brings it up.
func (s *Selector) AddPath(p Path, now time.Time) (Output, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == 0 || p.Site == 0 || p.Link == 0 {
		return Output{}, fmt.Errorf("pathsel: path %d to site %d on link %d: ids start at 1", p.ID, p.Site, p.Link)
	}
	if _, ok := s.paths[p.ID]; ok {
		return Output{}, fmt.Errorf("pathsel: path %d exists", p.ID)
	}
	e := &pathEntry{Path: p}
	e.h.since = now
	s.paths[p.ID] = e
	st := s.site(p.Site)
	st.paths = append(st.paths, e)
	sort.Slice(st.paths, func(i, j int) bool { return st.paths[i].ID < st.paths[j].ID })
	var out Output
	s.reselect(st, now, &out)
	return out, nil
}

// UpdatePath changes a path's link attributes (precedence, bandwidth) on
// a configuration reload; its site must stay the same.
func (s *Selector) UpdatePath(p Path, now time.Time) (Output, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.paths[p.ID]
	if e == nil {
		return Output{}, fmt.Errorf("pathsel: no path %d", p.ID)
	}
	if e.Site != p.Site {
		return Output{}, fmt.Errorf("pathsel: path %d: site %d -> %d: remove it and add it", p.ID, e.Site, p.Site)
	}
	e.Path = p
	var out Output
	s.reselect(s.sites[p.Site], now, &out)
	return out, nil
}

// RemovePath forgets a path; flows on it move at once (Moves).
func (s *Selector) RemovePath(id uint16, now time.Time) Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.paths[id]
	if e == nil {
		return Output{}
	}
	delete(s.paths, id)
	st := s.sites[e.Site]
	st.paths = slices.DeleteFunc(st.paths, func(x *pathEntry) bool { return x == e })
	var out Output
	s.reselect(st, now, &out)
	return out
}

// Connected reports that a path's session came up or went down (tunnel
// Connect / Disconnect). A new session also ends a probe Down verdict:
// reset the path's prober with it.
func (s *Selector) Connected(id uint16, up bool, now time.Time, reason string) Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Output
	e := s.paths[id]
	if e == nil || e.h.connected == up {
		return out
	}
	e.h.setAlive(up, false)
	if reason == "" {
		if up {
			reason = "session up"
		} else {
			reason = "session down"
		}
	}
	s.settle(e, now, reason, &out)
	s.reselect(s.sites[e.Site], now, &out)
	return out
}

// ProbeDown reports a change of a path's probe.Prober Down verdict:
// down after `misses` probes in a row went unanswered, or up again when
// they are answered. Down moves the path's flows at once, without waiting
// for an evaluation; coming back, the path recovers like any unacceptable
// path (RecoverGood clean evaluations).
func (s *Selector) ProbeDown(id uint16, down bool, misses int, now time.Time) Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Output
	e := s.paths[id]
	if e == nil || e.h.probeDown == down {
		return out
	}
	e.h.setAlive(e.h.connected, down)
	reason := "probes answered again"
	if down {
		e.h.misses = misses
		reason = fmt.Sprintf("%d probes lost in a row", misses)
		if !e.h.downAlert && e.h.connected {
			e.h.downAlert = true
			out.add(LinkQualityAlert{Time: now, Site: e.Site, Path: e.ID, Metric: MetricLostInARow, Value: float64(misses), Threshold: float64(misses), Unit: "probes"})
		}
	}
	s.settle(e, now, reason, &out)
	s.reselect(s.sites[e.Site], now, &out)
	return out
}

func (s *Selector) settle(e *pathEntry, now time.Time, why string, out *Output) {
	if ev := e.h.settle(now, e.Site, e.ID, why); ev != nil {
		out.add(*ev)
	}
	if e.h.downAlert && e.h.alive() && !e.h.recovering {
		e.h.downAlert = false
		out.add(LinkQualityClear{Time: now, Site: e.Site, Path: e.ID, Metric: MetricLostInARow, Unit: "probes"})
	}
}

// Tick runs the quality evaluation when it is due (every EvalInterval,
// the first one EvalInterval after the first Tick) with the paths' probe
// statistics, and applies hold-down expiries. stats returns a path's
// statistics, false when it has none (no prober yet). Call it at
// NextTick, or at least every second.
func (s *Selector) Tick(now time.Time, stats func(path uint16) (probe.Stats, bool)) Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Output
	if s.nextEval.IsZero() {
		s.nextEval = now.Add(s.cfg.EvalInterval)
	}
	if !now.Before(s.nextEval) {
		ids := make([]uint16, 0, len(s.paths))
		for id := range s.paths {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			e := s.paths[id]
			st, ok := stats(id)
			if !ok || !e.h.alive() {
				continue
			}
			th := s.sites[e.Site].th
			v := judge(st, th, s.cfg.MinSamples, now)
			out.add(e.h.evaluate(v, &s.cfg, th, e.Site, e.ID)...)
			s.settle(e, now, e.h.reasonOrUp(th, s.cfg.RecoverGood), &out)
		}
		s.nextEval = s.nextEval.Add(s.cfg.EvalInterval)
		if !s.nextEval.After(now) {
			s.nextEval = now.Add(s.cfg.EvalInterval)
		}
	}
	for _, id := range s.siteIDs() {
		s.reselect(s.sites[id], now, &out)
	}
	return out
}

func (h *health) reasonOrUp(t Thresholds, recoverGood int) string {
	if r := h.reasonOf(t, recoverGood); r != "" {
		return r
	}
	return "quality acceptable"
}

func (s *Selector) siteIDs() []uint16 {
	ids := make([]uint16, 0, len(s.sites))
	for id := range s.sites {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// NextTick is when Tick next has something to do after now: the next
// evaluation or the end of a hold-down.
func (s *Selector) NextTick(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.nextEval
	if next.IsZero() {
		next = now
	}
	for _, e := range s.paths {
		if e.h.state == Up && e.h.penalized {
			if end := e.h.holdEnds(s.cfg.HoldDown); end.After(now) && end.Before(next) {
				next = end
			}
		}
	}
	return next
}

// tier ranks a path by (local, remote) precedence; -1: never off-cloud.
func tier(p *Path) int {
	l, r := p.Precedence, p.RemotePrecedence
	if l == Unknown {
		l = Active
	}
	if r == Unknown {
		r = Active
	}
	if l >= LastResort || r >= LastResort {
		return -1
	}
	return int(l)*4 + int(r)
}

// best returns the ok paths of the best tier that has any.
func best(paths []*pathEntry, ok func(*pathEntry) bool) []*pathEntry {
	top := math.MaxInt
	for _, e := range paths {
		if t := tier(&e.Path); t >= 0 && t < top && ok(e) {
			top = t
		}
	}
	var out []*pathEntry
	for _, e := range paths {
		if tier(&e.Path) == top && ok(e) {
			out = append(out, e)
		}
	}
	return out
}

// choose returns the paths that take a site's new flows: the eligible
// (acceptable, hold-down over) paths of the best precedence that has any;
// else, rather than nothing, the Up ones still in hold-down; else the
// alive but degraded ones.
func (s *Selector) choose(st *site, now time.Time) []*pathEntry {
	for _, ok := range []func(*pathEntry) bool{
		func(e *pathEntry) bool { return e.h.eligible(now, s.cfg.HoldDown) },
		func(e *pathEntry) bool { return e.h.state == Up },
		func(e *pathEntry) bool { return e.h.alive() },
	} {
		if sel := best(st.paths, ok); len(sel) > 0 {
			return sel
		}
	}
	return nil
}

// weights: each selected link's bandwidth is shared by its selected paths,
// so links get new flows in proportion to their bandwidth however many
// remote endpoints each reaches.
func weights(sel []*pathEntry) []Backend {
	perLink := map[uint8]uint64{}
	for _, e := range sel {
		perLink[e.Link]++
	}
	out := make([]Backend, 0, len(sel))
	for _, e := range sel {
		bw, n := max(e.Bandwidth, 1), perLink[e.Link]
		var w uint64
		if bw > math.MaxUint64/840 {
			w = bw / n
		} else {
			w = bw * 840 / n // 840 = lcm(1..8): exact shares for up to 8 endpoints
		}
		out = append(out, Backend{Path: e.ID, Weight: max(w, 1)})
	}
	return out
}

func ids(es []*pathEntry) []uint16 {
	out := make([]uint16, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// reselect recomputes a site's path sets and tables, reports failovers
// and failbacks, and starts a migration plan when a set changed.
func (s *Selector) reselect(st *site, now time.Time, out *Output) {
	sel := s.choose(st, now)
	newIDs := ids(sel)
	old := st.selected
	if !slices.Equal(old, newIDs) {
		s.report(st, old, newIDs, sel, now, out)
		st.selected = newIDs
	}
	want := map[uint8][]Backend{0: weights(sel)}
	for _, e := range st.paths {
		if _, ok := want[e.Link]; !ok {
			var on []*pathEntry
			for _, x := range st.paths {
				if x.Link == e.Link {
					on = append(on, x)
				}
			}
			want[e.Link] = weights(best(on, func(x *pathEntry) bool { return x.h.eligible(now, s.cfg.HoldDown) }))
		}
	}
	for l := range st.sets {
		if _, ok := want[l]; !ok {
			want[l] = nil
		}
	}
	setChanged := false
	for l, b := range want {
		set := make([]uint16, len(b))
		for i := range b {
			set[i] = b[i].Path
		}
		if !slices.Equal(set, st.sets[l]) {
			setChanged = true
		}
		if len(b) == 0 {
			if _, ok := st.tables[l]; ok {
				delete(st.tables, l)
				out.changed(st.id)
			}
			delete(st.sets, l)
			continue
		}
		st.sets[l] = set
		if slices.Equal(b, st.backends[l]) {
			if _, ok := st.tables[l]; ok {
				continue // same paths, same weights: same table
			}
		}
		st.backends[l] = b
		t := Update(st.last[l], b)
		if !slices.Equal(t, st.tables[l]) {
			st.tables[l], st.last[l] = t, t
			out.changed(st.id)
		}
	}
	if setChanged {
		st.plan = plan{start: now, active: true}
	}
}

// report publishes the failover or failback a change of st's selected
// paths amounts to.
func (s *Selector) report(st *site, old, newIDs []uint16, sel []*pathEntry, now time.Time, out *Output) {
	var cause string
	for _, id := range old {
		if slices.Contains(newIDs, id) {
			continue
		}
		e := s.paths[id]
		switch {
		case e == nil || e.Site != st.id:
			cause = fmt.Sprintf("path %d removed", id)
		case !e.h.eligible(now, s.cfg.HoldDown):
			cause = fmt.Sprintf("path %d %s: %s", id, e.h.state, e.h.reasonOf(st.th, s.cfg.RecoverGood))
		}
		if cause != "" {
			break
		}
	}
	var back []uint16
	stopgap := false
	for _, e := range sel {
		if !e.h.rejoin {
			continue
		}
		ok := e.h.eligible(now, s.cfg.HoldDown)
		if !slices.Contains(old, e.ID) {
			back = append(back, e.ID)
			stopgap = stopgap || !ok
			e.h.rejoin = false
		} else if ok {
			e.h.rejoin = false
		}
	}
	from, to := slices.Clone(old), slices.Clone(newIDs)
	switch {
	case cause != "":
		out.add(PathFailover{Time: now, Site: st.id, From: from, To: to, Reason: cause})
	case len(back) > 0 && stopgap:
		out.add(PathFailback{Time: now, Site: st.id, From: from, To: to,
			Reason: fmt.Sprintf("path %v alive again, nothing better (not yet acceptable)", back)})
	case len(back) > 0:
		out.add(PathFailback{Time: now, Site: st.id, From: from, To: to,
			Reason: fmt.Sprintf("path %v acceptable for %v", back, s.cfg.HoldDown)})
	}
}

// Tables returns a site's Maglev tables, by local link id (0: all links),
// each policy.MaglevSlots path ids. A link with no table is absent: the
// gateway deletes it from site_paths (the kernel then uses table 0). No
// table at all: no usable path; rules use their secondary transport. The
// slices are copies.
func (s *Selector) Tables(siteID uint16) map[uint8][]uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint8][]uint16{}
	if st := s.sites[siteID]; st != nil {
		for l, t := range st.tables {
			out[l] = slices.Clone(t)
		}
	}
	return out
}

// Links returns every link id a site has had a table for (0 included),
// so a gateway can delete the ones Tables no longer lists.
func (s *Selector) Links(siteID uint16) []uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []uint8{0}
	if st := s.sites[siteID]; st != nil {
		for l := range st.last {
			if l != 0 {
				out = append(out, l)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Selected returns the paths that take a site's new flows (table 0).
func (s *Selector) Selected(siteID uint16) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.sites[siteID]; st != nil {
		return slices.Clone(st.selected)
	}
	return nil
}

// PathStatus is a path's state, for the API and metrics.
type PathStatus struct {
	Path
	State    State
	Since    time.Time
	Reason   string
	Eligible bool     // may take new flows (never on a last-resort link)
	Selected bool     // in the site's table 0
	Alerts   []string // metrics with an active alert
	Last     Verdict  // the last evaluation
}

// Status returns every path's status, by id.
func (s *Selector) Status(now time.Time) []PathStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PathStatus, 0, len(s.paths))
	for _, e := range s.paths {
		st := s.sites[e.Site]
		ps := PathStatus{Path: e.Path, State: e.h.state, Since: e.h.since, Reason: e.h.reasonOf(st.th, s.cfg.RecoverGood),
			Eligible: e.h.eligible(now, s.cfg.HoldDown) && tier(&e.Path) >= 0, Selected: slices.Contains(st.selected, e.ID), Last: e.h.last}
		for i, m := range e.h.m {
			if m.alerted {
				ps.Alerts = append(ps.Alerts, metricNames[i])
			}
		}
		if e.h.downAlert {
			ps.Alerts = append(ps.Alerts, MetricLostInARow)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
