package pathsel

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/probe"
)

var t0 = time.Unix(1_700_000_000, 0)

const (
	mbit = 1_000_000
	peer = 2 // the remote site in most tests
)

// rig drives a Selector with synthetic probe statistics and a clock that
// advances one second per Tick.
type rig struct {
	t      *testing.T
	s      *Selector
	now    time.Time
	stats  map[uint16]probe.Stats
	events []Event
	flows  []FlowRef
}

func clean() probe.Stats {
	return probe.Stats{Sent: 33, Samples: 33, RTTMean: 20 * time.Millisecond, Jitter: 2 * time.Millisecond}
}

func withJitter(j time.Duration) probe.Stats { s := clean(); s.Jitter = j; return s }

func withLoss(lost int) probe.Stats {
	s := clean()
	s.Lost, s.Loss, s.Samples = lost, float64(lost)/33, 33-lost
	return s
}

func newRig(t *testing.T, cfg Config, paths ...Path) *rig {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, s: s, now: t0, stats: map[uint16]probe.Stats{}}
	for _, p := range paths {
		o, err := s.AddPath(p, r.now)
		if err != nil {
			t.Fatal(err)
		}
		r.apply(o)
		r.stats[p.ID] = clean()
	}
	for _, p := range paths {
		r.apply(s.Connected(p.ID, true, r.now, ""))
	}
	r.apply(s.Tick(r.now, r.stat)) // evaluations every 10 s from now on
	return r
}

func (r *rig) stat(id uint16) (probe.Stats, bool) { s, ok := r.stats[id]; return s, ok }

func (r *rig) apply(o Output) { r.events = append(r.events, o.Events...) }

// advance moves the clock in 1 s ticks, calling Tick and applying Moves.
func (r *rig) advance(d time.Duration) {
	for end := r.now.Add(d); r.now.Before(end); {
		r.now = r.now.Add(time.Second)
		r.apply(r.s.Tick(r.now, r.stat))
		r.move()
	}
}

func (r *rig) move() []Move {
	ms := r.s.Moves(r.now, r.flows)
	for _, m := range ms {
		r.flows[m.Index].Path = m.To
	}
	return ms
}

// spread puts n flows on a site the way the kernel would, from its table.
func (r *rig) spread(n int, siteID uint16, link uint8) {
	tb := r.s.Tables(siteID)
	t := tb[link]
	if t == nil {
		t = tb[0]
	}
	for _, h := range flowHashes(n) {
		r.flows = append(r.flows, FlowRef{Site: siteID, Link: link, Path: t[h%policy.MaglevSlots], Hash: h})
	}
}

func (r *rig) flowsOn(p uint16) int {
	n := 0
	for _, f := range r.flows {
		if f.Path == p {
			n++
		}
	}
	return n
}

func collect[T Event](evs []Event) []T {
	var out []T
	for _, e := range evs {
		if x, ok := e.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

func (r *rig) state(id uint16) State {
	for _, ps := range r.s.Status(r.now) {
		if ps.ID == id {
			return ps.State
		}
	}
	r.t.Fatalf("no path %d", id)
	return 0
}

func (r *rig) selected(want ...uint16) {
	r.t.Helper()
	if got := r.s.Selected(peer); !slices.Equal(got, want) {
		r.t.Fatalf("at +%v: selected %v, want %v", r.now.Sub(t0), got, want)
	}
	checkConsistent(r.t, r.s, peer, r.now)
}

// checkConsistent: a site's selection is what its own view of the paths
// calls for: the selected paths share one precedence tier, and when any
// path is eligible they all are and no eligible path has a better tier.
func checkConsistent(t *testing.T, s *Selector, siteID uint16, now time.Time) {
	t.Helper()
	var sel, elig []PathStatus
	for _, ps := range s.Status(now) {
		if ps.Site != siteID {
			continue
		}
		if ps.Selected {
			sel = append(sel, ps)
		}
		if ps.Eligible {
			elig = append(elig, ps)
		}
	}
	for _, p := range sel {
		if tier(&p.Path) != tier(&sel[0].Path) || tier(&p.Path) < 0 {
			t.Fatalf("selected paths of different tiers: %+v", sel)
		}
		if p.State == Down {
			t.Fatalf("down path %d selected", p.ID)
		}
		if len(elig) > 0 && !p.Eligible {
			t.Fatalf("path %d selected while eligible ones exist", p.ID)
		}
	}
	for _, e := range elig {
		if tier(&e.Path) >= 0 && (len(sel) == 0 || tier(&e.Path) < tier(&sel[0].Path)) {
			t.Fatalf("eligible path %d has a better tier than the selection %+v", e.ID, sel)
		}
	}
	// Every table holds selected (table 0) or eligible (per link) paths.
	for l, tb := range s.Tables(siteID) {
		for _, p := range tb {
			ok := false
			for _, x := range sel {
				ok = ok || (l == 0 && x.ID == p)
			}
			for _, x := range elig {
				ok = ok || (l != 0 && x.ID == p && x.Link == l)
			}
			if !ok {
				t.Fatalf("table %d holds path %d", l, p)
			}
		}
	}
}

func activePassive() []Path {
	return []Path{
		{ID: 1, Site: peer, Link: 1, Precedence: Active, Bandwidth: 100 * mbit},
		{ID: 2, Site: peer, Link: 2, Precedence: Passive, Bandwidth: 100 * mbit},
	}
}

func TestDefaults(t *testing.T) {
	s, _ := New(Config{})
	c := s.Config()
	th := c.Thresholds
	if th.Loss != 0.03 || th.Jitter != 30*time.Millisecond || th.Latency != 600*time.Millisecond || th.MinLost != 2 || th.Recover != 0.8 ||
		c.EvalInterval != 10*time.Second || c.FailBad != 2 || c.FailOf != 3 || c.RecoverGood != 3 || c.HoldDown != 10*time.Second ||
		c.MoveShare != 0.2 || c.MoveInterval != time.Second || c.MinSamples != 5 {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []Config{{FailBad: 3, FailOf: 2}, {FailOf: 40}, {MoveShare: 2}, {Thresholds: Thresholds{Loss: 3}}, {RecoverGood: -1}, {HoldDown: -time.Second}} {
		if _, err := New(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := s.SetThresholds(3, Thresholds{Recover: 1.5}); err == nil {
		t.Error("recover ratio 1.5 accepted")
	}
	if _, err := s.AddPath(Path{ID: 0, Site: 1}, t0); err == nil {
		t.Error("path id 0 accepted")
	}
}

// TestNofM walks the per-metric counters through sequences of
// evaluations: fail on 2 bad of the last 3, recover after 3 good in a
// row; values between the recover and fail thresholds are neither.
func TestNofM(t *testing.T) {
	const B, G, M = 40 * time.Millisecond, 2 * time.Millisecond, 27 * time.Millisecond // bad, good, middle (24..30 ms)
	for _, c := range []struct {
		seq  []time.Duration
		want string // state after each evaluation: u(p), d(egraded)
	}{
		{[]time.Duration{B, G, B}, "uud"},
		{[]time.Duration{B, B}, "ud"},
		{[]time.Duration{B, G, G, B, G, G, B}, "uuuuuuu"},
		{[]time.Duration{M, M, M, M}, "uuuu"},
		{[]time.Duration{B, B, G, G, G}, "udddu"},
		{[]time.Duration{B, B, G, G, M, G, G, G}, "uddddddu"},
		{[]time.Duration{B, B, G, G, B, G, G, G}, "uddddddu"},
	} {
		r := newRig(t, Config{}, activePassive()...)
		got := ""
		for _, j := range c.seq {
			r.stats[1] = withJitter(j)
			r.advance(10 * time.Second)
			got += map[State]string{Up: "u", Degraded: "d", Down: "D"}[r.state(1)]
		}
		if got != c.want {
			t.Errorf("%v: %s, want %s", c.seq, got, c.want)
		}
	}
}

func TestLossNeedsTwoLostProbes(t *testing.T) {
	r := newRig(t, Config{}, activePassive()...)
	r.stats[1] = withLoss(1) // 3.03 %: above 3 %, but one probe
	r.advance(60 * time.Second)
	if r.state(1) != Up || len(collect[LinkQualityAlert](r.events)) != 0 {
		t.Fatal("one lost probe per window failed the path")
	}
	r.stats[1] = withLoss(2)
	r.advance(20 * time.Second)
	a := collect[LinkQualityAlert](r.events)
	if r.state(1) != Degraded || len(a) != 1 || a[0].Metric != "loss" || math.Abs(a[0].Value-100*2.0/33) > 1e-9 || a[0].Threshold != 3 || a[0].Unit != "%" {
		t.Fatalf("%v %+v", r.state(1), a)
	}
	// One lost probe is not good enough to recover (3 % > 2.4 %).
	r.stats[1] = withLoss(1)
	r.advance(60 * time.Second)
	if r.state(1) != Degraded {
		t.Fatal("recovered with 3 % loss")
	}
}

func TestTooFewSamplesNoVerdict(t *testing.T) {
	r := newRig(t, Config{}, activePassive()...)
	r.stats[1] = probe.Stats{Sent: 3, Lost: 3, Loss: 1}
	r.advance(60 * time.Second)
	if r.state(1) != Up {
		t.Fatal("3 samples made a verdict")
	}
}

func TestThresholdsPerSiteAndDisabled(t *testing.T) {
	r := newRig(t, Config{},
		Path{ID: 1, Site: 2, Link: 1, Bandwidth: 1},
		Path{ID: 2, Site: 3, Link: 1, Bandwidth: 1},
		Path{ID: 3, Site: 4, Link: 1, Bandwidth: 1})
	if err := r.s.SetThresholds(2, Thresholds{Jitter: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := r.s.SetThresholds(4, Thresholds{Latency: -1}); err != nil {
		t.Fatal(err)
	}
	for id := uint16(1); id <= 3; id++ {
		s := withJitter(20 * time.Millisecond)
		s.RTTMean = 900 * time.Millisecond
		r.stats[id] = s
	}
	r.advance(30 * time.Second)
	if r.state(1) != Degraded || r.state(2) != Degraded || r.state(3) != Up {
		t.Fatalf("states %v %v %v", r.state(1), r.state(2), r.state(3))
	}
	for _, a := range collect[LinkQualityAlert](r.events) {
		if (a.Path == 1) != (a.Metric == "jitter") && !(a.Path == 1 && a.Metric == "latency") {
			t.Fatalf("%v", a)
		}
		if a.Path == 3 {
			t.Fatalf("disabled metric alerted: %v", a)
		}
	}
}

// TestActivePassive: the active path becomes unacceptable: after 2 of 3
// bad evaluations the passive takes new flows at once and existing flows
// move gradually (20 % per second); after 3 good evaluations and 10 s of
// hold-down, they move back, gradually.
func TestActivePassive(t *testing.T) {
	r := newRig(t, Config{}, activePassive()...)
	r.selected(1)
	if tb := r.s.Tables(peer); len(tb) != 3 || !allOf(tb[0], 1) || !allOf(tb[1], 1) || !allOf(tb[2], 2) {
		t.Fatalf("tables %v", keys(tb))
	}
	if n := len(collect[PathFailover](r.events)) + len(collect[PathFailback](r.events)); n != 0 {
		t.Fatalf("%d failover events at start", n)
	}
	r.spread(1000, peer, 0)

	r.stats[1] = withLoss(4)
	r.events = nil
	r.advance(20 * time.Second)
	r.selected(2)
	failAt := r.now
	fo := collect[PathFailover](r.events)
	if len(fo) != 1 || !slices.Equal(fo[0].From, []uint16{1}) || !slices.Equal(fo[0].To, []uint16{2}) || !strings.Contains(fo[0].Reason, "loss") {
		t.Fatalf("failover %+v", fo)
	}
	if !allOf(r.s.Tables(peer)[0], 2) {
		t.Fatal("new flows do not go to the passive path at once")
	}
	// Order: the alert, the state change, the failover.
	if _, ok := r.events[0].(LinkQualityAlert); !ok {
		t.Fatalf("first event %T", r.events[0])
	}
	// Tick applied the first Moves at failAt: 200 flows.
	moved := 1000 - r.flowsOn(1)
	if moved != 200 {
		t.Fatalf("%d flows moved in the first interval", moved)
	}
	for k := 1; k <= 5; k++ {
		r.advance(time.Second)
		want := min(1000, 200*(k+1))
		if got := 1000 - r.flowsOn(1); got != want {
			t.Fatalf("%d s after failover: %d moved, want %d", k, got, want)
		}
	}
	if r.s.Migrating(peer) {
		t.Fatal("still migrating")
	}

	r.stats[1] = clean()
	r.events = nil
	r.advance(60 * time.Second)
	r.selected(1)
	var upAt, backAt time.Time
	for _, e := range r.events {
		switch e := e.(type) {
		case PathStateChange:
			if e.Path == 1 && e.To == Up {
				upAt = e.Time
			}
		case PathFailback:
			backAt = e.Time
			if !slices.Equal(e.From, []uint16{2}) || !slices.Equal(e.To, []uint16{1}) {
				t.Fatalf("%+v", e)
			}
		}
	}
	if c := collect[LinkQualityClear](r.events); len(c) != 1 || c[0].Metric != "loss" || !c[0].Time.Equal(upAt) {
		t.Fatalf("clear %+v", c)
	}
	// Three good evaluations (at +10, +20, +30 s after the failover's),
	// then the hold-down.
	if upAt.Sub(failAt) != 30*time.Second || backAt.Sub(upAt) != DefaultHoldDown {
		t.Fatalf("up %v after failover, failback %v after up", upAt.Sub(failAt), backAt.Sub(upAt))
	}
	if r.flowsOn(2) != 0 {
		t.Fatalf("%d flows still on the passive path", r.flowsOn(2))
	}
}

func allOf(t []uint16, p uint16) bool {
	if len(t) != policy.MaglevSlots {
		return false
	}
	for _, x := range t {
		if x != p {
			return false
		}
	}
	return true
}

func keys(m map[uint8][]uint16) []uint8 {
	var out []uint8
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDownMovesAtOnce: three probes lost in a row take an active/active
// path out at once, and its flows move in one go; the other path's flows
// stay. Coming back, it recovers like an unacceptable path.
func TestDownMovesAtOnce(t *testing.T) {
	r := newRig(t, Config{},
		Path{ID: 1, Site: peer, Link: 1, Precedence: Active, Bandwidth: 100 * mbit},
		Path{ID: 2, Site: peer, Link: 2, Precedence: Active, Bandwidth: 100 * mbit})
	r.selected(1, 2)
	r.spread(1000, peer, 0)
	on1, on2 := r.flowsOn(1), r.flowsOn(2)
	var before []FlowRef
	before = append(before, r.flows...)

	r.now = r.now.Add(300 * time.Millisecond)
	o := r.s.ProbeDown(1, true, 3, r.now)
	r.apply(o)
	if len(o.Events) != 3 {
		t.Fatalf("%+v", o.Events)
	}
	if a, ok := o.Events[0].(LinkQualityAlert); !ok || a.Metric != MetricLostInARow || a.Value != 3 {
		t.Fatalf("%+v", o.Events[0])
	}
	if sc, ok := o.Events[1].(PathStateChange); !ok || sc.To != Down {
		t.Fatalf("%+v", o.Events[1])
	}
	if fo, ok := o.Events[2].(PathFailover); !ok || !slices.Equal(fo.To, []uint16{2}) || !strings.Contains(fo.Reason, "3 probes lost") {
		t.Fatalf("%+v", o.Events[2])
	}
	if !slices.Equal(o.Changed, []uint16{peer}) || !allOf(r.s.Tables(peer)[0], 2) {
		t.Fatal("tables")
	}
	ms := r.move()
	if len(ms) != on1 {
		t.Fatalf("%d moves for %d flows on the dead path", len(ms), on1)
	}
	for _, m := range ms {
		if !m.Immediate || m.From != 1 || m.To != 2 || before[m.Index].Path != 1 {
			t.Fatalf("%+v", m)
		}
	}
	if r.flowsOn(2) != on1+on2 {
		t.Fatal("flows lost")
	}

	// Probes come back: degraded (recovering), not eligible.
	r.now = r.now.Add(2 * time.Second)
	r.apply(r.s.ProbeDown(1, false, 0, r.now))
	if r.state(1) != Degraded {
		t.Fatalf("state %v", r.state(1))
	}
	r.selected(2)
	r.events = nil
	r.advance(50 * time.Second)
	r.selected(1, 2)
	if fb := collect[PathFailback](r.events); len(fb) != 1 || !slices.Equal(fb[0].To, []uint16{1, 2}) {
		t.Fatalf("%+v", fb)
	}
	if c := collect[LinkQualityClear](r.events); len(c) != 1 || c[0].Metric != MetricLostInARow {
		t.Fatalf("%+v", c)
	}
	// Active/active: a path rejoining moves no established flow.
	if r.flowsOn(2) != on1+on2 {
		t.Fatal("established flows moved when a path rejoined")
	}
}

// TestActiveActiveUnacceptable: an unacceptable active/active path gets
// no new flows; its flows move gradually; the other path's never move.
func TestActiveActiveUnacceptable(t *testing.T) {
	r := newRig(t, Config{},
		Path{ID: 1, Site: peer, Link: 1, Precedence: Active, Bandwidth: 300 * mbit},
		Path{ID: 2, Site: peer, Link: 2, Precedence: Active, Bandwidth: 100 * mbit})
	r.spread(4000, peer, 0)
	if f := float64(r.flowsOn(1)) / 4000; math.Abs(f-0.75) > 0.05 {
		t.Fatalf("3:1 bandwidth gave %.3f", f)
	}
	var was1 []int
	for i, f := range r.flows {
		if f.Path == 1 {
			was1 = append(was1, i)
		}
	}
	r.stats[2] = withJitter(50 * time.Millisecond)
	// Evaluate without moving: no new flow goes to path 2 any more.
	for i := 0; i < 20; i++ {
		r.now = r.now.Add(time.Second)
		r.apply(r.s.Tick(r.now, r.stat))
	}
	r.selected(1)
	if !allOf(r.s.Tables(peer)[0], 1) {
		t.Fatal("the unacceptable path still gets new flows")
	}
	for r.flowsOn(2) > 0 {
		for _, m := range r.move() {
			if m.Immediate || m.From != 2 || m.To != 1 {
				t.Fatalf("%+v", m)
			}
		}
		r.now = r.now.Add(100 * time.Millisecond)
	}
	for _, i := range was1 {
		if r.flows[i].Path != 1 {
			t.Fatal("a flow of the good path moved")
		}
	}
}

// TestStartup: paths that come up for the first time are taken at once;
// the active taking over from a passive that came up first is no failback
// and needs no hold-down.
func TestStartup(t *testing.T) {
	s, _ := New(Config{})
	var evs []Event
	for _, p := range activePassive() {
		o, _ := s.AddPath(p, t0)
		evs = append(evs, o.Events...)
	}
	if len(s.Tables(peer)) != 0 {
		t.Fatal("tables before any session")
	}
	o := s.Connected(2, true, t0, "")
	if !slices.Equal(s.Selected(peer), []uint16{2}) || !slices.Equal(o.Changed, []uint16{peer}) {
		t.Fatal("passive alone")
	}
	o = s.Connected(1, true, t0.Add(time.Second), "")
	evs = append(evs, o.Events...)
	if !slices.Equal(s.Selected(peer), []uint16{1}) {
		t.Fatal("active not taken at once")
	}
	for _, e := range evs {
		switch e.(type) {
		case PathFailover, PathFailback:
			t.Fatalf("%+v at startup", e)
		}
	}
	if !s.Migrating(peer) {
		t.Fatal("flows of the passive should move")
	}
}

// TestLastResort: a last-resort path never carries off-cloud flows, not
// even when nothing else is left.
func TestLastResort(t *testing.T) {
	r := newRig(t, Config{},
		Path{ID: 1, Site: peer, Link: 1, Precedence: Active, Bandwidth: mbit},
		Path{ID: 2, Site: peer, Link: 3, Precedence: LastResort, Bandwidth: mbit})
	r.selected(1)
	if _, ok := r.s.Tables(peer)[3]; ok {
		t.Fatal("last-resort link table")
	}
	r.apply(r.s.Connected(1, false, r.now, "keepalive timeout"))
	r.selected()
	if len(r.s.Tables(peer)) != 0 {
		t.Fatal("tables with only a last-resort path")
	}
	fo := collect[PathFailover](r.events)
	if len(fo) != 1 || len(fo[0].To) != 0 || !strings.Contains(fo[0].Reason, "no session") {
		t.Fatalf("%+v", fo)
	}
}

// TestPreferredLink: a rule's preferred link has its own table while that
// link has an acceptable path, whatever its precedence; without one the
// kernel falls back to table 0, and flows pinned there move back
// gradually.
func TestPreferredLink(t *testing.T) {
	r := newRig(t, Config{}, activePassive()...)
	r.spread(500, peer, 2)
	if r.flowsOn(2) != 500 {
		t.Fatal("preferred passive link not used")
	}
	r.stats[2] = withJitter(time.Second)
	r.advance(20 * time.Second)
	tb := r.s.Tables(peer)
	if _, ok := tb[2]; ok || !slices.Contains(r.s.Links(peer), 2) {
		t.Fatalf("tables %v, links %v", keys(tb), r.s.Links(peer))
	}
	r.advance(5 * time.Second)
	if r.flowsOn(1) != 500 {
		t.Fatalf("%d flows moved to table 0", r.flowsOn(1))
	}
	checkConsistent(t, r.s, peer, r.now)
}

// TestRemotePrecedence: from one local link, the peer's active endpoints
// are used before its passive ones.
func TestRemotePrecedence(t *testing.T) {
	r := newRig(t, Config{},
		Path{ID: 1, Site: peer, Link: 1, Precedence: Active, RemotePrecedence: Active, Bandwidth: mbit},
		Path{ID: 2, Site: peer, Link: 1, Precedence: Active, RemotePrecedence: Passive, Bandwidth: mbit},
		Path{ID: 3, Site: peer, Link: 2, Precedence: Passive, RemotePrecedence: Active, Bandwidth: mbit})
	r.selected(1)
	r.apply(r.s.Connected(1, false, r.now, ""))
	r.selected(2)
	r.apply(r.s.Connected(2, false, r.now, ""))
	r.selected(3)
}

func TestRemovePath(t *testing.T) {
	r := newRig(t, Config{}, activePassive()...)
	r.spread(100, peer, 0)
	o := r.s.RemovePath(1, r.now)
	r.apply(o)
	r.selected(2)
	if fo := collect[PathFailover](o.Events); len(fo) != 1 || !strings.Contains(fo[0].Reason, "removed") {
		t.Fatalf("%+v", o.Events)
	}
	ms := r.move()
	if len(ms) != 100 || !ms[0].Immediate {
		t.Fatal("flows on a removed path move at once")
	}
	if _, err := r.s.UpdatePath(Path{ID: 2, Site: peer, Link: 2, Precedence: Active, Bandwidth: 5}, r.now); err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.UpdatePath(Path{ID: 2, Site: 9}, r.now); err == nil {
		t.Fatal("site change accepted")
	}
}

// TestGradualBudget: whatever the call rate, at most ceil(MoveShare x N x
// k) of N misplaced flows have moved k intervals into a migration.
func TestGradualBudget(t *testing.T) {
	r := newRig(t, Config{MoveShare: 0.1, MoveInterval: 500 * time.Millisecond}, activePassive()...)
	r.spread(777, peer, 0)
	r.stats[1] = withJitter(100 * time.Millisecond)
	// Evaluate without moving.
	for i := 0; i < 20; i++ {
		r.now = r.now.Add(time.Second)
		r.apply(r.s.Tick(r.now, r.stat))
	}
	r.selected(2)
	start := r.now
	for step := 0; r.flowsOn(1) > 0; step++ {
		r.move()
		k := int(r.now.Sub(start)/(500*time.Millisecond)) + 1
		if moved, max := 777-r.flowsOn(1), int(math.Ceil(0.1*777*float64(k))); moved > max {
			t.Fatalf("%v in: %d moved, budget %d", r.now.Sub(start), moved, max)
		}
		r.now = r.now.Add(37 * time.Millisecond)
		if step > 1000 {
			t.Fatal("never finished")
		}
	}
	if took := r.now.Sub(start); took < 4500*time.Millisecond || took > 5*time.Second {
		t.Fatalf("took %v, want 10 intervals of 500 ms", took)
	}
}

// TestSinglePath: a site with one path keeps using it while it is alive,
// even unacceptable (rather than nothing); when it dies the site has no
// table (secondary transport), and it comes back at once as a stopgap.
func TestSinglePath(t *testing.T) {
	r := newRig(t, Config{}, Path{ID: 1, Site: peer, Link: 1, Precedence: Active, Bandwidth: mbit})
	r.stats[1] = withLoss(10)
	r.advance(30 * time.Second)
	if r.state(1) != Degraded {
		t.Fatal("not degraded")
	}
	r.selected(1)
	r.apply(r.s.ProbeDown(1, true, 3, r.now))
	r.selected()
	if len(r.s.Tables(peer)) != 0 {
		t.Fatal("a table without a live path")
	}
	r.apply(r.s.ProbeDown(1, false, 0, r.now))
	r.selected(1)
	fo, fb := collect[PathFailover](r.events), collect[PathFailback](r.events)
	if len(fo) != 1 || len(fo[0].To) != 0 || len(fb) != 1 || !strings.Contains(fb[0].Reason, "nothing better") {
		t.Fatalf("failovers %+v, failbacks %+v", fo, fb)
	}
	r.stats[1] = clean()
	r.advance(60 * time.Second)
	if r.state(1) != Up || len(collect[PathFailback](r.events)) != 1 {
		t.Fatal("recovery")
	}
}
