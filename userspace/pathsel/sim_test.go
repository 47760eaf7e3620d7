package pathsel

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/probe"
)

// sim runs real probe.Probers at both ends of an active and a passive
// path to one site, through a simulated network with a 1 ms clock, and
// wires them to a Selector the way the gateway does: Down changes go to
// ProbeDown at once, Tick runs every 100 ms with the probers' Stats, and
// Moves is applied to a set of flows every 100 ms.
type sim struct {
	t        *testing.T
	now      time.Time
	sel      *Selector
	rng      *rand.Rand
	paths    []*simPath
	queue    []delivery
	flows    []FlowRef
	events   []Event
	impaired func(now time.Time, p *simPath) (drop float64, extra time.Duration)
}

type simPath struct {
	id       uint16
	near     *probe.Prober // this site's
	far      *probe.Prober // the peer's
	wasDown  bool
	baseline time.Duration // one-way delay
}

type delivery struct {
	at time.Time
	fn func()
}

func newSim(t *testing.T) *sim {
	s := &sim{t: t, now: t0, rng: rand.New(rand.NewPCG(42, 43))}
	s.sel, _ = New(Config{})
	for _, p := range activePassive() {
		sp := &simPath{id: p.ID, near: probe.New(probe.Config{}, s.now), far: probe.New(probe.Config{}, s.now.Add(-time.Hour)), baseline: 10 * time.Millisecond}
		s.paths = append(s.paths, sp)
		o, err := s.sel.AddPath(p, s.now)
		if err != nil {
			t.Fatal(err)
		}
		s.apply(o)
		s.apply(s.sel.Connected(p.ID, true, s.now, ""))
	}
	s.impaired = func(time.Time, *simPath) (float64, time.Duration) { return 0, 0 }
	return s
}

func (s *sim) apply(o Output) { s.events = append(s.events, o.Events...) }

func (s *sim) at(t time.Time, fn func()) {
	i := sort.Search(len(s.queue), func(i int) bool { return s.queue[i].at.After(t) })
	s.queue = slices.Insert(s.queue, i, delivery{t, fn})
}

// send carries a frame over path p (either direction): dropped or
// delayed as the impairment says at the moment it is sent.
func (s *sim) send(p *simPath, fn func(now time.Time)) {
	drop, extra := s.impaired(s.now, p)
	if drop > 0 && s.rng.Float64() < drop {
		return
	}
	at := s.now.Add(p.baseline + extra)
	s.at(at, func() { fn(at) })
}

func (s *sim) probe(p *simPath, from, to *probe.Prober, payload []byte) {
	s.send(p, func(now time.Time) {
		reply, err := to.OnProbe(payload, now)
		if err != nil {
			s.t.Fatal(err)
		}
		s.send(p, func(now time.Time) { _ = from.OnReply(reply, now) })
	})
}

func (s *sim) stats(id uint16) (probe.Stats, bool) {
	for _, p := range s.paths {
		if p.id == id {
			return p.near.Stats(s.now), true
		}
	}
	return probe.Stats{}, false
}

func (s *sim) run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(time.Millisecond)
		for len(s.queue) > 0 && !s.queue[0].at.After(s.now) {
			q := s.queue[0]
			s.queue = s.queue[1:]
			q.fn()
		}
		for _, p := range s.paths {
			if b, ok := p.near.Next(s.now); ok {
				s.probe(p, p.near, p.far, b)
			}
			if b, ok := p.far.Next(s.now); ok {
				s.probe(p, p.far, p.near, b)
			}
			if down := p.near.Down(s.now); down != p.wasDown {
				p.wasDown = down
				s.apply(s.sel.ProbeDown(p.id, down, p.near.ConsecutiveMisses(s.now), s.now))
			}
		}
		if s.now.Sub(t0)%(100*time.Millisecond) == 0 {
			s.apply(s.sel.Tick(s.now, s.stats))
			for _, m := range s.sel.Moves(s.now, s.flows) {
				s.flows[m.Index].Path = m.To
			}
		}
	}
}

func (s *sim) spread(n int) {
	tb := s.sel.Tables(peer)[0]
	for _, h := range flowHashes(n) {
		s.flows = append(s.flows, FlowRef{Site: peer, Path: tb[h%1021], Hash: h})
	}
}

// count returns the failovers and failbacks published in [from, to).
func (s *sim) count(from, to time.Time) (fo, fb []time.Time) {
	for _, e := range s.events {
		if e.When().Before(from) || !e.When().Before(to) {
			continue
		}
		switch e.(type) {
		case PathFailover:
			fo = append(fo, e.When())
		case PathFailback:
			fb = append(fb, e.When())
		}
	}
	return
}

// oscillate impairs the active path for `bad` out of every `period`,
// from start on, until stop.
func oscillate(start, stop time.Time, bad, period time.Duration, drop float64, jitter time.Duration, rng *rand.Rand) func(time.Time, *simPath) (float64, time.Duration) {
	return func(now time.Time, p *simPath) (float64, time.Duration) {
		if p.id != 1 || now.Before(start) || !now.Before(stop) || now.Sub(start)%period >= bad {
			return 0, 0
		}
		var extra time.Duration
		if jitter > 0 {
			extra = time.Duration(rng.Int64N(int64(jitter)))
		}
		return drop, extra
	}
}

// TestOscillatingImpairment: the active path is bad for 3 s, good for 3 s,
// for 60 s, with the default timers; "bad" is either a blackhole or 20 %
// loss each way with 0..150 ms of extra delay (jitter well above 30 ms).
//
// Bound: exactly one failover and no failback during the 60 s. The first
// bad phase takes the path out (a blackhole within 1 s through Down; the
// lossy variant through Down or at the latest at the second bad
// evaluation, 20 s). To take new flows again the path must then have
// RecoverGood = 3 evaluations in a row whose 10 s windows show no loss
// above 2.4 %, jitter under 24 ms and then 10 s of hold-down: at least
// 30 s of clean probes. With a 6 s period every 10 s window holds at
// least 3 s of impairment, so after the first failover the active path
// never qualifies, and with it out of the table nothing can fail over
// again. A decision on reachability alone (BFD-style up/down) would follow
// every phase: 10 failovers and 10 failbacks in the 60 s.
//
// Once the oscillation stops (its last bad phase ended 3 s before), the
// path comes back exactly once, 41 to 51 s after its last bad probe: the
// loss window must be clean (10 s + the 1 s probe timeout), then three
// good evaluations (the first one up to 10 s later, depending on the
// evaluations' phase; then +20 s) and the 10 s hold-down. Its flows come
// back gradually.
func TestOscillatingImpairment(t *testing.T) {
	for _, c := range []struct {
		name   string
		drop   float64
		jitter time.Duration
	}{
		{"blackhole", 1, 0},
		{"loss and jitter", 0.2, 150 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(t)
			s.run(20 * time.Second)
			s.spread(300)
			if !slices.Equal(s.sel.Selected(peer), []uint16{1}) {
				t.Fatal("not on the active path after warm-up")
			}
			start := s.now
			stop := start.Add(60 * time.Second)
			s.impaired = oscillate(start, stop, 3*time.Second, 6*time.Second, c.drop, c.jitter, s.rng)
			s.run(60 * time.Second)
			fo, fb := s.count(start, stop)
			t.Logf("during the oscillation: failovers at %v, failbacks at %v", since(start, fo), since(start, fb))
			if len(fo) != 1 || len(fb) != 0 {
				t.Fatalf("%d failovers and %d failbacks in 60 s of oscillation, want 1 and 0", len(fo), len(fb))
			}
			if c.drop == 1 && fo[0].Sub(start) >= time.Second {
				t.Fatalf("blackhole noticed after %v", fo[0].Sub(start))
			}
			if !slices.Equal(s.sel.Selected(peer), []uint16{2}) {
				t.Fatal("not on the passive path")
			}
			for _, f := range s.flows {
				if f.Path != 2 {
					t.Fatal("a flow is still on the impaired path")
				}
			}

			s.run(70 * time.Second)
			fo, fb = s.count(stop, s.now)
			t.Logf("after: failovers at %v, failbacks at %v", since(stop, fo), since(stop, fb))
			lastBad := stop.Add(-3 * time.Second)
			if len(fo) != 0 || len(fb) != 1 || fb[0].Sub(lastBad) < 41*time.Second || fb[0].Sub(lastBad) > 51*time.Second {
				t.Fatalf("after the oscillation: %d failovers, failbacks %v", len(fo), since(stop, fb))
			}
			if !slices.Equal(s.sel.Selected(peer), []uint16{1}) {
				t.Fatal("not back on the active path")
			}
			for _, f := range s.flows {
				if f.Path != 1 {
					t.Fatal("a flow did not come back")
				}
			}
			alerts := collect[LinkQualityAlert](s.events)
			if len(alerts) > 3 { // at most one per metric or lost_in_a_row
				t.Fatalf("%d alerts", len(alerts))
			}
		})
	}
}

// TestPeriodicOutage: a 2 s blackhole on the active path every minute for
// 10 minutes. Each one fails over within a second; each failback comes at
// least (RecoverGood - 1) x EvalInterval + HoldDown = 30 s after its
// failover (in practice ~45 s: the window must first be clean), so there
// can be at most 1 + 600 s / 30 s failovers; here exactly one per outage.
func TestPeriodicOutage(t *testing.T) {
	s := newSim(t)
	s.run(20 * time.Second)
	start := s.now
	stop := start.Add(10 * time.Minute)
	s.impaired = oscillate(start, stop, 2*time.Second, time.Minute, 1, 0, s.rng)
	s.run(10 * time.Minute)
	fo, fb := s.count(start, stop)
	if len(fo) != 10 || len(fb) != 10 {
		t.Fatalf("%d failovers, %d failbacks; want 10 and 10", len(fo), len(fb))
	}
	for i := range fo {
		if d := fo[i].Sub(start) - time.Duration(i)*time.Minute; d >= time.Second {
			t.Fatalf("outage %d noticed after %v", i, d)
		}
		if d := fb[i].Sub(fo[i]); d < 30*time.Second {
			t.Fatalf("failback %v after failover", d)
		}
	}
	t.Logf("failovers %v\nfailbacks %v", since(start, fo), since(start, fb))
}

func since(t0 time.Time, ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Sub(t0).Round(time.Millisecond)
	}
	return out
}
