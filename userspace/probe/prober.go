package probe

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults.
const (
	DefaultInterval  = 300 * time.Millisecond
	DefaultWindow    = 10 * time.Second
	DefaultTimeout   = time.Second
	DefaultMargin    = 50 * time.Millisecond
	DefaultDownAfter = 3
)

// Config tunes a Prober. Zero fields take the defaults.
type Config struct {
	// Interval between two probes (300 ms). The window holds Window /
	// Interval probes: 33 with the defaults, so one lost probe is 3 %.
	Interval time.Duration
	// Window over which loss, mean RTT and RTT extremes are computed (10 s,
	// the evaluation period of pathsel).
	Window time.Duration
	// Timeout is the least time a probe waits for its reply before it
	// counts as lost (1 s); the timeout is max(Timeout, 3 x SRTT).
	Timeout time.Duration
	// Margin is the least time, on top of SRTT, after which an unanswered
	// probe is overdue and counts towards DownAfter (50 ms); the margin is
	// max(Margin, 4 x RTTVAR).
	Margin time.Duration
	// DownAfter overdue probes in a row make the path Down (3).
	DownAfter int
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Margin <= 0 {
		c.Margin = DefaultMargin
	}
	if c.DownAfter <= 0 {
		c.DownAfter = DefaultDownAfter
	}
	return c
}

// Reply errors: the reply is ignored (apart from being counted).
var (
	ErrNotReply  = errors.New("probe: reply without echo fields")
	ErrUnknown   = errors.New("probe: reply to a probe this prober did not send or no longer remembers")
	ErrDuplicate = errors.New("probe: duplicate reply")
	ErrLate      = errors.New("probe: reply after the probe's timeout")
)

// Stats is a snapshot of a path's measurements.
type Stats struct {
	// Loss sample: the probes whose timeout expired in the last Window.
	Sent int
	Lost int
	Loss float64 // Lost / Sent; 0 when Sent is 0

	RTT     time.Duration // latest sample
	RTTMean time.Duration // mean over the answered probes sent in the last Window
	RTTMin  time.Duration
	RTTMax  time.Duration
	Samples int           // RTT samples in the last Window
	SRTT    time.Duration // smoothed (RFC 6298)
	RTTVar  time.Duration

	Jitter    time.Duration // max(JitterOut, JitterIn)
	JitterOut time.Duration // RFC 3550 jitter of one-way transit, this end -> peer
	JitterIn  time.Duration // peer -> this end

	ConsecutiveMisses int
	Down              bool

	LastReply time.Time // zero: none yet

	// Lifetime counters.
	ProbesSent    uint64
	RepliesOK     uint64
	RepliesLate   uint64
	RepliesBad    uint64 // malformed, unknown, duplicate
	PeerProbes    uint64 // probes of the peer answered
	PeerProbesBad uint64
}

type record struct {
	seq      uint32
	sent     time.Time
	overdue  time.Time // counts towards DownAfter from then on
	deadline time.Time // lost from then on
	answered bool
	rtt      time.Duration
	hasRTT   bool
}

// Prober probes one path. The zero value is not usable: use New.
type Prober struct {
	mu    sync.Mutex
	cfg   Config
	epoch time.Time // wire timestamps are ns since epoch

	seq      uint32 // next probe's
	replySeq uint32
	next     time.Time // next probe due
	recs     []record  // in send order, consecutive seqs

	srtt, rttvar time.Duration
	hasRTT       bool
	lastRTT      time.Duration
	lastReply    time.Time

	jOut, jIn         float64 // ns
	prevOut, prevIn   int64
	hasPrevTransit    bool
	sent, ok, late    uint64
	bad, peer, peerBd uint64
}

// New returns a Prober whose first probe is due at now.
func New(cfg Config, now time.Time) *Prober {
	p := &Prober{cfg: cfg.withDefaults(), epoch: now}
	p.reset(now)
	return p
}

// Config returns the configuration in use (defaults applied).
func (p *Prober) Config() Config { return p.cfg }

// Reset forgets every measurement (for a new session on the path); the
// next probe is due at now.
func (p *Prober) Reset(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reset(now)
}

func (p *Prober) reset(now time.Time) {
	p.next = now
	p.recs = p.recs[:0]
	p.srtt, p.rttvar, p.hasRTT, p.lastRTT = 0, 0, false, 0
	p.lastReply = time.Time{}
	p.jOut, p.jIn, p.hasPrevTransit = 0, 0, false
}

// stamp is t on the wire clock: ns since the prober's epoch.
func (p *Prober) stamp(t time.Time) uint64 {
	d := t.Sub(p.epoch)
	if d < 0 {
		return 0
	}
	return uint64(d)
}

// timers returns the overdue and loss delays for a probe sent now.
func (p *Prober) timers() (overdue, timeout time.Duration) {
	timeout = max(p.cfg.Timeout, 3*p.srtt)
	if !p.hasRTT {
		return timeout, timeout
	}
	return min(timeout, p.srtt+max(4*p.rttvar, p.cfg.Margin)), timeout
}

// Next returns the payload of a probe to send as tunnel.FrameProbe when
// one is due at now, and records it as sent. A caller that is late by
// more than an interval gets one probe, not a burst.
func (p *Prober) Next(now time.Time) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Before(p.next) {
		return nil, false
	}
	p.prune(now)
	overdue, timeout := p.timers()
	seq := p.seq
	p.seq++
	p.recs = append(p.recs, record{seq: seq, sent: now, overdue: now.Add(overdue), deadline: now.Add(timeout)})
	p.sent++
	p.next = p.next.Add(p.cfg.Interval)
	if !p.next.After(now) {
		p.next = now.Add(p.cfg.Interval)
	}
	return Packet{Seq: seq, Sent: p.stamp(now)}.Marshal(), true
}

// prune drops the records no window needs any more.
func (p *Prober) prune(now time.Time) {
	cut := 0
	for cut < len(p.recs) && p.recs[cut].deadline.Add(p.cfg.Window).Before(now) {
		cut++
	}
	if cut > 0 {
		n := copy(p.recs, p.recs[cut:])
		p.recs = p.recs[:n]
	}
}

// NextDue is when Next or Down may next change their answer after now:
// the next probe, or the moment an outstanding probe becomes overdue. A
// probe loop sleeps until then.
func (p *Prober) NextDue(now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	due := p.next
	for i := range p.recs {
		r := &p.recs[i]
		if !r.answered && r.overdue.After(now) && r.overdue.Before(due) {
			due = r.overdue
		}
	}
	return due
}

// OnReply takes the payload of a tunnel.FrameProbeReply received at now.
func (p *Prober) OnReply(payload []byte, now time.Time) error {
	pk, err := Unmarshal(payload)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && pk.Flags&FlagEcho == 0 {
		err = ErrNotReply
	}
	if err != nil {
		p.bad++
		return err
	}
	var r *record
	if len(p.recs) > 0 {
		if i := pk.EchoSeq - p.recs[0].seq; int64(i) < int64(len(p.recs)) {
			r = &p.recs[i]
		}
	}
	if r == nil || r.seq != pk.EchoSeq || p.stamp(r.sent) != pk.EchoSent {
		p.bad++
		return fmt.Errorf("%w (seq %d)", ErrUnknown, pk.EchoSeq)
	}
	if r.answered {
		p.bad++
		return ErrDuplicate
	}
	if !now.Before(r.deadline) {
		p.late++
		return ErrLate
	}
	r.answered = true
	p.ok++
	p.lastReply = now
	elapsed := now.Sub(r.sent)
	if hold := time.Duration(min(pk.Hold, math.MaxInt64)); hold >= 0 && hold <= elapsed {
		r.rtt, r.hasRTT = elapsed-hold, true
		p.sample(r.rtt)
	}
	// One-way transits; wrapping int64 arithmetic keeps the differences
	// right whatever the two clocks' epochs are.
	out := int64(pk.Sent-pk.Hold) - int64(pk.EchoSent)
	in := int64(p.stamp(now)) - int64(pk.Sent)
	if p.hasPrevTransit {
		p.jOut += (math.Abs(float64(out-p.prevOut)) - p.jOut) / 16
		p.jIn += (math.Abs(float64(in-p.prevIn)) - p.jIn) / 16
	}
	p.prevOut, p.prevIn, p.hasPrevTransit = out, in, true
	return nil
}

// sample folds an RTT sample into SRTT and RTTVAR (RFC 6298).
func (p *Prober) sample(rtt time.Duration) {
	p.lastRTT = rtt
	if !p.hasRTT {
		p.srtt, p.rttvar, p.hasRTT = rtt, rtt/2, true
		return
	}
	d := p.srtt - rtt
	if d < 0 {
		d = -d
	}
	p.rttvar = (3*p.rttvar + d) / 4
	p.srtt = (7*p.srtt + rtt) / 8
}

// OnProbe answers the peer's probe received at now: it returns the payload
// of the tunnel.FrameProbeReply to send back on the same session at once.
func (p *Prober) OnProbe(payload []byte, now time.Time) ([]byte, error) {
	return p.ReplyAt(payload, now, now)
}

// ReplyAt answers a probe received at received with a reply sent at sent,
// for a responder that queues probes before answering: the hold time in
// the reply takes the wait out of the peer's RTT.
func (p *Prober) ReplyAt(payload []byte, received, sent time.Time) ([]byte, error) {
	pk, err := Unmarshal(payload)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.peerBd++
		return nil, err
	}
	p.peer++
	hold := max(sent.Sub(received), 0)
	r := Packet{Flags: FlagEcho, Seq: p.replySeq, Sent: p.stamp(sent), EchoSeq: pk.Seq, EchoSent: pk.Sent, Hold: uint64(hold)}
	p.replySeq++
	return r.Marshal(), nil
}

// misses counts overdue unanswered probes from the newest backwards,
// skipping those still in flight, until an answered one.
func (p *Prober) misses(now time.Time) int {
	n := 0
	for i := len(p.recs) - 1; i >= 0; i-- {
		r := &p.recs[i]
		if r.answered {
			break
		}
		if !now.Before(r.overdue) {
			n++
		}
	}
	return n
}

// ConsecutiveMisses is the number of overdue probes in a row without a
// reply at now.
func (p *Prober) ConsecutiveMisses(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.misses(now)
}

// Down reports whether DownAfter probes in a row are overdue without a
// reply at now.
func (p *Prober) Down(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.misses(now) >= p.cfg.DownAfter
}

// Stats returns the measurements at now.
func (p *Prober) Stats(now time.Time) Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{
		RTT: p.lastRTT, SRTT: p.srtt, RTTVar: p.rttvar,
		JitterOut: time.Duration(p.jOut), JitterIn: time.Duration(p.jIn),
		LastReply:  p.lastReply,
		ProbesSent: p.sent, RepliesOK: p.ok, RepliesLate: p.late, RepliesBad: p.bad,
		PeerProbes: p.peer, PeerProbesBad: p.peerBd,
	}
	s.Jitter = max(s.JitterOut, s.JitterIn)
	from := now.Add(-p.cfg.Window)
	var sum time.Duration
	for i := range p.recs {
		r := &p.recs[i]
		if r.deadline.After(from) && !r.deadline.After(now) {
			s.Sent++
			if !r.answered {
				s.Lost++
			}
		}
		if r.hasRTT && r.sent.After(from) && !r.sent.After(now) {
			if s.Samples == 0 || r.rtt < s.RTTMin {
				s.RTTMin = r.rtt
			}
			s.RTTMax = max(s.RTTMax, r.rtt)
			sum += r.rtt
			s.Samples++
		}
	}
	if s.Sent > 0 {
		s.Loss = float64(s.Lost) / float64(s.Sent)
	}
	if s.Samples > 0 {
		s.RTTMean = sum / time.Duration(s.Samples)
	}
	s.ConsecutiveMisses = p.misses(now)
	s.Down = s.ConsecutiveMisses >= p.cfg.DownAfter
	return s
}
