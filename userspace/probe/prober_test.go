package probe

import (
	"errors"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// wire is a simulated path between two probers, a and b, with a clock the
// test drives in 1 ms steps. Each direction has its own one-way delay and
// drop decision, asked per packet at the moment it is sent.
type wire struct {
	t       *testing.T
	now     time.Time
	a, b    *Prober
	pending []delivery
	// delay and drop per direction: ab is a -> b.
	delayAB, delayBA func(now time.Time) time.Duration
	dropAB, dropBA   func(now time.Time, probe bool, seq uint32) bool
	hold             time.Duration // b holds probes this long before replying
	errs             []error
}

type delivery struct {
	at time.Time
	fn func(now time.Time)
}

func constant(d time.Duration) func(time.Time) time.Duration {
	return func(time.Time) time.Duration { return d }
}

func never(time.Time, bool, uint32) bool { return false }

func newWire(t *testing.T, oneWay time.Duration) *wire {
	t0 := time.Unix(1_700_000_000, 0)
	w := &wire{t: t, now: t0, delayAB: constant(oneWay), delayBA: constant(oneWay), dropAB: never, dropBA: never}
	w.a = New(Config{}, t0)
	// b's clock has a different epoch: offsets must not matter.
	w.b = New(Config{}, t0.Add(-17*time.Hour))
	return w
}

func (w *wire) schedule(at time.Time, fn func(time.Time)) {
	w.pending = append(w.pending, delivery{at, fn})
	sort.SliceStable(w.pending, func(i, j int) bool { return w.pending[i].at.Before(w.pending[j].at) })
}

// send carries one frame from one prober to the other.
func (w *wire) send(from, to *Prober, probe bool, payload []byte) {
	delay, drop := w.delayAB, w.dropAB
	if from == w.b {
		delay, drop = w.delayBA, w.dropBA
	}
	pk, _ := Unmarshal(payload)
	if drop(w.now, probe, pk.Seq) {
		return
	}
	w.schedule(w.now.Add(delay(w.now)), func(now time.Time) {
		if !probe {
			if err := to.OnReply(payload, now); err != nil {
				w.errs = append(w.errs, err)
			}
			return
		}
		hold := time.Duration(0)
		if to == w.b {
			hold = w.hold
		}
		w.schedule(now.Add(hold), func(sent time.Time) {
			reply, err := to.ReplyAt(payload, now, sent)
			if err != nil {
				w.t.Fatal(err)
			}
			w.send(to, from, false, reply)
		})
	})
}

// run advances the clock to until, 1 ms at a time; each is called after
// every step.
func (w *wire) run(until time.Time, each func(now time.Time)) {
	for w.now.Before(until) {
		w.now = w.now.Add(time.Millisecond)
		for len(w.pending) > 0 && !w.pending[0].at.After(w.now) {
			d := w.pending[0]
			w.pending = w.pending[1:]
			d.fn(w.now)
		}
		for _, p := range []*Prober{w.a, w.b} {
			if b, ok := p.Next(w.now); ok {
				to := w.b
				if p == w.b {
					to = w.a
				}
				w.send(p, to, true, b)
			}
		}
		if each != nil {
			each(w.now)
		}
	}
}

func (w *wire) runFor(d time.Duration) { w.run(w.now.Add(d), nil) }

func TestRTTSubtractsHold(t *testing.T) {
	w := newWire(t, 15*time.Millisecond)
	w.hold = 5 * time.Millisecond
	w.runFor(20 * time.Second)
	s := w.a.Stats(w.now)
	if s.RTT != 30*time.Millisecond || s.RTTMean != 30*time.Millisecond || s.SRTT != 30*time.Millisecond {
		t.Fatalf("RTT %v mean %v srtt %v, want 30ms (hold removed)", s.RTT, s.RTTMean, s.SRTT)
	}
	if s.Loss != 0 || s.Lost != 0 || s.Sent < 30 || s.Samples < 30 {
		t.Fatalf("clean path: %+v", s)
	}
	if s.Jitter != 0 {
		t.Fatalf("constant delay gave jitter %v", s.Jitter)
	}
	// Both ends measure.
	if sb := w.b.Stats(w.now); sb.RTT != 30*time.Millisecond || sb.Samples < 30 {
		t.Fatalf("the other end: %+v", sb)
	}
	if len(w.errs) > 0 {
		t.Fatal(w.errs)
	}
	// 20 s at one probe per 300 ms, the first at once.
	if s.ProbesSent != 67 {
		t.Fatalf("%d probes in 20 s", s.ProbesSent)
	}
}

func TestIntervalIsConfigurable(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := New(Config{Interval: 100 * time.Millisecond}, t0)
	n := 0
	for now := t0; now.Before(t0.Add(time.Second)); now = now.Add(time.Millisecond) {
		if _, ok := p.Next(now); ok {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d probes in 1 s at 100 ms", n)
	}
	// A caller that was away gets one probe, not a burst.
	if _, ok := p.Next(t0.Add(5 * time.Second)); !ok {
		t.Fatal("no probe after a gap")
	}
	if _, ok := p.Next(t0.Add(5*time.Second + time.Millisecond)); ok {
		t.Fatal("burst after a gap")
	}
	if got := p.NextDue(t0.Add(5 * time.Second)); got != t0.Add(5*time.Second+100*time.Millisecond) {
		t.Fatalf("next due %v", got.Sub(t0))
	}
}

// TestJitterOneWay: delay variation on one direction shows in that
// direction's jitter only; RFC 3550 smoothing converges to |D|.
func TestJitterOneWay(t *testing.T) {
	w := newWire(t, 10*time.Millisecond)
	// Probes leave every 300 ms: alternate the delay every 300 ms.
	w.delayAB = func(now time.Time) time.Duration {
		if now.UnixMilli()/300%2 == 0 {
			return 10 * time.Millisecond
		}
		return 30 * time.Millisecond
	}
	w.runFor(60 * time.Second)
	sa, sb := w.a.Stats(w.now), w.b.Stats(w.now)
	// a's probes alternate 10/30 ms on the way out: |D| = 20 ms each time.
	if sa.JitterOut < 19*time.Millisecond || sa.JitterOut > 20*time.Millisecond || sa.JitterIn > time.Millisecond {
		t.Fatalf("a: out %v in %v, want ~20ms and ~0", sa.JitterOut, sa.JitterIn)
	}
	if sa.Jitter != sa.JitterOut {
		t.Fatal("Jitter is the worse direction")
	}
	// For b the same link is its inbound direction (replies come a -> b).
	if sb.JitterIn < 19*time.Millisecond || sb.JitterOut > time.Millisecond {
		t.Fatalf("b: out %v in %v", sb.JitterOut, sb.JitterIn)
	}
}

// TestJitterSmoothing checks J += (|D| - J)/16 step by step.
func TestJitterSmoothing(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := New(Config{}, t0)
	peer := uint64(5e9) // the peer's clock, far from ours
	var want float64
	transits := []int64{10, 14, 11, 11, 30, 10} // ms, a -> peer
	for i, tr := range transits {
		now := t0.Add(time.Duration(i) * 300 * time.Millisecond)
		b, _ := p.Next(now)
		pk, _ := Unmarshal(b)
		peerRx := peer + pk.Sent + uint64(tr)*1e6
		reply := Packet{Flags: FlagEcho, EchoSeq: pk.Seq, EchoSent: pk.Sent, Sent: peerRx + 1e6, Hold: 1e6}
		// Back in exactly 5 ms (+1 ms hold): the inbound transit is constant.
		if err := p.OnReply(reply.Marshal(), now.Add(time.Duration(tr+1+5)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			d := float64(tr-transits[i-1]) * 1e6
			if d < 0 {
				d = -d
			}
			want += (d - want) / 16
		}
		if got := p.Stats(now).JitterOut; got != time.Duration(want) {
			t.Fatalf("after %d replies: %v, want %v", i+1, got, time.Duration(want))
		}
	}
	if j := p.Stats(t0).JitterIn; j != 0 {
		t.Fatalf("inbound jitter %v", j)
	}
}

func TestLossOverWindow(t *testing.T) {
	w := newWire(t, 20*time.Millisecond)
	// Every 10th probe of a is dropped on the way out.
	w.dropAB = func(_ time.Time, probe bool, seq uint32) bool { return probe && seq%10 == 0 }
	w.runFor(30 * time.Second)
	s := w.a.Stats(w.now)
	// 10 s of probes at 300 ms: 33 or 34, three or four of them dropped.
	if s.Sent < 33 || s.Sent > 34 || s.Lost < 3 || s.Lost > 4 || s.Loss != float64(s.Lost)/float64(s.Sent) {
		t.Fatalf("loss %d/%d = %.3f", s.Lost, s.Sent, s.Loss)
	}
	if s.ConsecutiveMisses != 0 || s.Down {
		t.Fatalf("isolated losses made the path down: %+v", s)
	}
	// b answers a's probes but its own get through: no loss for b.
	if sb := w.b.Stats(w.now); sb.Lost != 0 {
		t.Fatalf("b lost %d", sb.Lost)
	}
	// The window slides: 11 s after the losses stop, none is left.
	w.dropAB = never
	w.runFor(11 * time.Second)
	if s := w.a.Stats(w.now); s.Lost != 0 || s.Sent < 33 {
		t.Fatalf("after recovery: %d/%d", s.Lost, s.Sent)
	}
}

func TestLateReplyIsLost(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := New(Config{}, t0)
	b1, _ := p.Next(t0)
	pk, _ := Unmarshal(b1)
	reply := Packet{Flags: FlagEcho, EchoSeq: pk.Seq, EchoSent: pk.Sent}.Marshal()
	if err := p.OnReply(reply, t0.Add(time.Second)); !errors.Is(err, ErrLate) {
		t.Fatalf("reply after 1 s: %v", err)
	}
	if err := p.OnReply(Packet{Flags: FlagEcho, EchoSeq: 99}.Marshal(), t0.Add(time.Second)); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown seq: %v", err)
	}
	if err := p.OnReply(Packet{EchoSeq: pk.Seq, EchoSent: pk.Sent}.Marshal(), t0.Add(time.Second)); !errors.Is(err, ErrNotReply) {
		t.Fatalf("no echo flag: %v", err)
	}
	if err := p.OnReply(Packet{Flags: FlagEcho, EchoSeq: pk.Seq, EchoSent: pk.Sent + 1}.Marshal(), t0.Add(10*time.Millisecond)); !errors.Is(err, ErrUnknown) {
		t.Fatalf("wrong echoed time: %v", err)
	}
	s := p.Stats(t0.Add(2 * time.Second))
	if s.Sent != 1 || s.Lost != 1 || s.RepliesLate != 1 || s.RepliesBad != 3 || s.Samples != 0 {
		t.Fatalf("%+v", s)
	}
	// Duplicates are refused.
	b2, _ := p.Next(t0.Add(2 * time.Second))
	pk, _ = Unmarshal(b2)
	reply = Packet{Flags: FlagEcho, EchoSeq: pk.Seq, EchoSent: pk.Sent}.Marshal()
	if err := p.OnReply(reply, t0.Add(2*time.Second+time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := p.OnReply(reply, t0.Add(2*time.Second+2*time.Millisecond)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestTimeoutFollowsRTT(t *testing.T) {
	// With a 500 ms RTT the timeout is 1.5 s: replies after 1.2 s are not
	// late once the RTT is known.
	w := newWire(t, 250*time.Millisecond)
	w.runFor(10 * time.Second)
	w.delayBA = constant(950 * time.Millisecond) // RTT 1.2 s
	w.runFor(20 * time.Second)
	s := w.a.Stats(w.now)
	if s.RepliesLate != 0 {
		t.Fatalf("%d late replies at 1.2 s RTT after 500 ms", s.RepliesLate)
	}
	if s.RTT != 1200*time.Millisecond {
		t.Fatalf("RTT %v", s.RTT)
	}
}

// TestDownDetection: a blackhole (everything sent from its start on is
// dropped, both ways) makes the path Down within 2 x Interval + Margin and
// 3 x Interval + Margin + RTT/2, whatever the phase of the probes: under
// 1 s for RTTs up to 100 ms with the defaults. Replies coming back end it.
func TestDownDetection(t *testing.T) {
	const iv, margin = DefaultInterval, DefaultMargin
	for _, rtt := range []time.Duration{2 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond} {
		worst := time.Duration(0)
		for phase := time.Duration(0); phase < iv; phase += 7 * time.Millisecond {
			w := newWire(t, rtt/2)
			w.runFor(15*time.Second + phase) // RTTVAR settles
			start := w.now
			dead := func(now time.Time, _ bool, _ uint32) bool { return !now.Before(start) }
			w.dropAB, w.dropBA = dead, dead
			var down time.Time
			w.run(start.Add(3*time.Second), func(now time.Time) {
				if down.IsZero() && w.a.Down(now) {
					down = now
				}
			})
			if down.IsZero() {
				t.Fatalf("rtt %v phase %v: never down", rtt, phase)
			}
			took := down.Sub(start)
			lo, hi := 2*iv+margin-time.Millisecond, 3*iv+margin+rtt/2+time.Millisecond
			if took < lo || took > hi {
				t.Fatalf("rtt %v phase %v: down after %v, want %v..%v", rtt, phase, took, lo, hi)
			}
			if rtt <= 100*time.Millisecond && took >= time.Second {
				t.Fatalf("rtt %v phase %v: down after %v", rtt, phase, took)
			}
			// b, probing the same dead path, sees it too.
			if !w.b.Down(w.now) {
				t.Fatalf("rtt %v: the other end did not notice", rtt)
			}
			worst = max(worst, took)

			// The path comes back: the first reply ends Down.
			w.dropAB, w.dropBA = never, never
			w.run(w.now.Add(iv+rtt+2*time.Millisecond), nil)
			if w.a.Down(w.now) || w.b.Down(w.now) {
				t.Fatalf("rtt %v: still down after the path came back", rtt)
			}
		}
		t.Logf("rtt %v: worst detection %v", rtt, worst)
	}
}

// TestNoFalseDown: a jittery, slightly lossy path (one-way delay 10..150
// ms, 1 % loss each way) for ten minutes is never Down, and its RTVAR-based
// margin grows with the jitter.
func TestNoFalseDown(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := newWire(t, 0)
	jittery := func(time.Time) time.Duration {
		return 10*time.Millisecond + time.Duration(rng.Int64N(int64(140*time.Millisecond)))
	}
	lossy := func(time.Time, bool, uint32) bool { return rng.Float64() < 0.01 }
	w.delayAB, w.delayBA, w.dropAB, w.dropBA = jittery, jittery, lossy, lossy
	maxMiss := 0
	w.run(w.now.Add(10*time.Minute), func(now time.Time) {
		if n := w.a.ConsecutiveMisses(now); n > maxMiss {
			maxMiss = n
		}
	})
	s := w.a.Stats(w.now)
	if maxMiss >= DefaultDownAfter {
		t.Fatalf("%d misses in a row on a live path", maxMiss)
	}
	if s.Jitter < 20*time.Millisecond || s.Loss > 0.1 {
		t.Fatalf("%+v", s)
	}
	t.Logf("jitter %v loss %.3f srtt %v rttvar %v, at most %d misses in a row", s.Jitter, s.Loss, s.SRTT, s.RTTVar, maxMiss)
}

// TestDelaySpike: replies delayed (900 ms) past the point where three
// probes are overdue (2 x 300 + 20 + 50 ms), but within the
// timeout make the path Down for a moment (it cannot be told from a
// blackhole), then the late replies end it and count as no loss.
func TestDelaySpike(t *testing.T) {
	w := newWire(t, 10*time.Millisecond)
	w.runFor(15 * time.Second)
	start := w.now
	w.delayBA = func(now time.Time) time.Duration {
		if now.Sub(start) < time.Second {
			return 900 * time.Millisecond
		}
		return 10 * time.Millisecond
	}
	sawDown := false
	w.run(start.Add(12*time.Second), func(now time.Time) {
		if w.a.Down(now) {
			sawDown = true
		}
	})
	if !sawDown {
		t.Fatal("a 900 ms stall was not noticed")
	}
	if s := w.a.Stats(w.now); s.Down || s.Lost != 0 || s.RepliesLate != 0 {
		t.Fatalf("after the spike: %+v", s)
	}
}

func TestResetForgets(t *testing.T) {
	w := newWire(t, 10*time.Millisecond)
	w.dropAB = func(time.Time, bool, uint32) bool { return true }
	w.runFor(5 * time.Second)
	if !w.a.Down(w.now) {
		t.Fatal("not down")
	}
	w.a.Reset(w.now)
	if s := w.a.Stats(w.now); s.Down || s.Sent != 0 || s.SRTT != 0 {
		t.Fatalf("after reset: %+v", s)
	}
	// Replies to probes from before the reset are unknown.
	w.dropAB = never
	w.runFor(5 * time.Second)
	if s := w.a.Stats(w.now); s.Down || s.Samples == 0 {
		t.Fatalf("%+v", s)
	}
}

func TestNextDueIncludesOverdue(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := New(Config{}, t0)
	b, _ := p.Next(t0)
	pk, _ := Unmarshal(b)
	_ = p.OnReply(Packet{Flags: FlagEcho, EchoSeq: pk.Seq, EchoSent: pk.Sent}.Marshal(), t0.Add(20*time.Millisecond))
	now := t0.Add(300 * time.Millisecond)
	p.Next(now)
	// srtt 20 ms, rttvar 10 ms: overdue 20 + 50 ms after sending, before the
	// next probe.
	if got := p.NextDue(now).Sub(now); got != 70*time.Millisecond {
		t.Fatalf("next due in %v", got)
	}
}
