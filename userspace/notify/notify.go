// Package notify delivers notifications about BGP-neighbour and
// LAN-monitoring state changes by webhook (HTTP POST, JSON) and e-mail
// (SMTP), each channel with a frequency:
//
//   - Immediate: every message is delivered on its own, at once;
//   - Hourly, Daily, Weekly: the first message about a subject (its Key,
//     e.g. one BGP neighbour) is delivered at once; later ones within the
//     period are gathered and delivered together when the period ends.
//     A period with nothing gathered ends quietly, and the next message
//     is again delivered at once.
//
// The clock is injectable so that tests do not wait for hours.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Frequency of a channel.
type Frequency int

const (
	Immediate Frequency = iota
	Hourly
	Daily
	Weekly
)

// Period is how long messages are gathered (0 for Immediate).
func (f Frequency) Period() time.Duration {
	switch f {
	case Hourly:
		return time.Hour
	case Daily:
		return 24 * time.Hour
	case Weekly:
		return 7 * 24 * time.Hour
	}
	return 0
}

func (f Frequency) String() string {
	switch f {
	case Immediate:
		return "immediate"
	case Hourly:
		return "hourly"
	case Daily:
		return "daily"
	case Weekly:
		return "weekly"
	}
	return fmt.Sprintf("Frequency(%d)", int(f))
}

// ParseFrequency reads immediate, hourly, daily or weekly.
func ParseFrequency(s string) (Frequency, error) {
	for f := Immediate; f <= Weekly; f++ {
		if strings.EqualFold(strings.TrimSpace(s), f.String()) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("notify: frequency %q: want immediate, hourly, daily or weekly", s)
}

// Message is one thing to tell an operator.
type Message struct {
	Time time.Time `json:"time"`
	// Kind is the event kind, e.g. bgp_session_down.
	Kind string `json:"kind"`
	// Key is the subject that frequencies throttle by, e.g. "bgp/msee1".
	Key     string `json:"key"`
	Summary string `json:"summary"`
}

// Event is what bgp.Event and monitor.Event provide; FromEvent turns one
// into a Message without this package importing theirs.
type Event interface {
	When() time.Time
	Kind() string
	Key() string
	Summary() string
}

// FromEvent makes a Message of an event.
func FromEvent(e Event) Message {
	return Message{Time: e.When(), Kind: e.Kind(), Key: e.Key(), Summary: e.Summary()}
}

// Delivery is what one webhook call or one e-mail carries.
type Delivery struct {
	Channel   string `json:"channel"`
	Frequency string `json:"frequency"`
	Key       string `json:"key"`
	// Digest: gathered over a period (the first message of a period is
	// delivered alone, Digest false).
	Digest   bool      `json:"digest"`
	Messages []Message `json:"messages"`
}

// Subject is a one-line title: the message itself, or a count for a
// digest.
func (d Delivery) Subject() string {
	if len(d.Messages) == 1 && !d.Digest {
		return oneLine(d.Messages[0].Summary)
	}
	return fmt.Sprintf("%d more events for %s (%s digest)", len(d.Messages), d.Key, d.Frequency)
}

// Text is the plain-text body: one line per message, oldest first.
func (d Delivery) Text() string {
	var b strings.Builder
	for _, m := range d.Messages {
		fmt.Fprintf(&b, "%s  %s\n", m.Time.UTC().Format(time.RFC3339), oneLine(m.Summary))
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// Sender delivers to one destination (Webhook, Email).
type Sender interface {
	Send(ctx context.Context, d Delivery) error
}

// Channel is one destination with its frequency.
type Channel struct {
	Name      string
	Sender    Sender
	Frequency Frequency
	// Match selects the messages for this channel; nil means all.
	Match func(Message) bool
}

// Clock is time as the Notifier sees it.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Stopper
}

// Stopper is the part of *time.Timer the Notifier uses.
type Stopper interface{ Stop() bool }

type systemClock struct{}

func (systemClock) Now() time.Time                              { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Stopper { return time.AfterFunc(d, f) }

// SystemClock is the real clock.
func SystemClock() Clock { return systemClock{} }

// Options of a Notifier.
type Options struct {
	Clock      Clock // nil: SystemClock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Attempts per delivery (default 3), RetryDelay between them (default
	// 2 s, real time: it paces retries, not periods).
	Attempts   int
	RetryDelay time.Duration
	// SendTimeout bounds one attempt (default 30 s).
	SendTimeout time.Duration
}

// Notifier routes messages to channels, applying each one's frequency.
type Notifier struct {
	clock    Clock
	log      *slog.Logger
	attempts int
	retry    time.Duration
	timeout  time.Duration
	met      *notifyMetrics

	chans []*channelState

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type channelState struct {
	Channel
	mu      sync.Mutex
	buckets map[string]*bucket
	queue   []Delivery
	wake    chan struct{}
	closed  bool
}

// bucket is the throttling state of one key on one channel.
type bucket struct {
	windowEnd time.Time // until then, messages are gathered
	pending   []Message
	timer     Stopper
}

// New starts a Notifier: one delivery goroutine per channel.
func New(channels []Channel, opts Options) (*Notifier, error) {
	n := &Notifier{clock: opts.Clock, log: opts.Logger, attempts: opts.Attempts, retry: opts.RetryDelay, timeout: opts.SendTimeout}
	if n.clock == nil {
		n.clock = SystemClock()
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.log = n.log.With("component", "notify")
	if n.attempts <= 0 {
		n.attempts = 3
	}
	if n.retry <= 0 {
		n.retry = 2 * time.Second
	}
	if n.timeout <= 0 {
		n.timeout = 30 * time.Second
	}
	seen := map[string]bool{}
	var names []string
	for _, c := range channels {
		switch {
		case c.Name == "":
			return nil, errors.New("notify: channel without a name")
		case seen[c.Name]:
			return nil, fmt.Errorf("notify: channel %q: name used twice", c.Name)
		case c.Sender == nil:
			return nil, fmt.Errorf("notify: channel %q: no sender", c.Name)
		case c.Frequency < Immediate || c.Frequency > Weekly:
			return nil, fmt.Errorf("notify: channel %q: invalid frequency %d", c.Name, int(c.Frequency))
		}
		seen[c.Name] = true
		names = append(names, c.Name)
		n.chans = append(n.chans, &channelState{Channel: c, buckets: map[string]*bucket{}, wake: make(chan struct{}, 1)})
	}
	n.met = newNotifyMetrics(names)
	if opts.Registerer != nil {
		if err := n.met.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("notify: metrics: %w", err)
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, c := range n.chans {
		n.wg.Add(1)
		go n.deliver(c)
	}
	return n, nil
}

// Notify hands a message to every matching channel; it never blocks on
// the network.
func (n *Notifier) Notify(m Message) {
	if m.Time.IsZero() {
		m.Time = n.clock.Now()
	}
	for _, c := range n.chans {
		if c.Match != nil && !c.Match(m) {
			continue
		}
		n.accept(c, m)
	}
}

// NotifyEvent is Notify(FromEvent(e)).
func (n *Notifier) NotifyEvent(e Event) { n.Notify(FromEvent(e)) }

func (n *Notifier) accept(c *channelState, m Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	period := c.Frequency.Period()
	if period == 0 {
		c.enqueue(Delivery{Channel: c.Name, Frequency: c.Frequency.String(), Key: m.Key, Messages: []Message{m}})
		return
	}
	now := n.clock.Now()
	b := c.buckets[m.Key]
	if b == nil {
		b = &bucket{}
		c.buckets[m.Key] = b
	}
	if !now.Before(b.windowEnd) && len(b.pending) == 0 {
		// First occurrence in a quiet period: at once, and a new period
		// starts.
		b.windowEnd = now.Add(period)
		c.enqueue(Delivery{Channel: c.Name, Frequency: c.Frequency.String(), Key: m.Key, Messages: []Message{m}})
		return
	}
	b.pending = append(b.pending, m)
	if b.timer == nil {
		key := m.Key
		b.timer = n.clock.AfterFunc(b.windowEnd.Sub(now), func() { n.flush(c, key) })
	}
}

// flush ends a period with gathered messages: one digest, and the next
// period starts now.
func (n *Notifier) flush(c *channelState, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buckets[key]
	if b == nil || c.closed {
		return // Close delivered what was pending
	}
	b.timer = nil
	if len(b.pending) == 0 {
		return
	}
	c.enqueue(Delivery{Channel: c.Name, Frequency: c.Frequency.String(), Key: key, Digest: true, Messages: b.pending})
	b.pending = nil
	b.windowEnd = n.clock.Now().Add(c.Frequency.Period())
}

// enqueue is called with c.mu held.
func (c *channelState) enqueue(d Delivery) {
	c.queue = append(c.queue, d)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (n *Notifier) deliver(c *channelState) {
	defer n.wg.Done()
	for {
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		closed := c.closed
		c.mu.Unlock()
		for _, d := range q {
			n.send(c, d)
		}
		if len(q) > 0 {
			continue
		}
		if closed {
			return
		}
		<-c.wake
	}
}

func (n *Notifier) send(c *channelState, d Delivery) {
	var err error
	for attempt := 1; attempt <= n.attempts; attempt++ {
		ctx, cancel := context.WithTimeout(n.ctx, n.timeout)
		err = c.Sender.Send(ctx, d)
		cancel()
		if err == nil {
			n.met.delivered(c.Name, true)
			return
		}
		n.log.Warn("notification not delivered", "channel", c.Name, "attempt", attempt, "err", err)
		if attempt == n.attempts {
			break
		}
		select {
		case <-time.After(n.retry):
		case <-n.ctx.Done():
			attempt = n.attempts // stop retrying, fall through to the error
		}
	}
	n.met.delivered(c.Name, false)
	n.log.Error("notification dropped", "channel", c.Name, "subject", d.Subject(), "err", err)
}

// Close delivers what is still gathered (a shutdown must not swallow a
// digest), waits for the queues to drain, and stops. ctx bounds the wait;
// when it ends, sends in progress are cancelled.
func (n *Notifier) Close(ctx context.Context) error {
	for _, c := range n.chans {
		c.mu.Lock()
		for key, b := range c.buckets {
			if b.timer != nil {
				b.timer.Stop()
				b.timer = nil
			}
			if len(b.pending) > 0 {
				c.enqueue(Delivery{Channel: c.Name, Frequency: c.Frequency.String(), Key: key, Digest: true, Messages: b.pending})
				b.pending = nil
			}
		}
		c.closed = true
		select {
		case c.wake <- struct{}{}:
		default:
		}
		c.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done
		return ctx.Err()
	}
}
