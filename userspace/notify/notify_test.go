package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/xwan-dev/xwan/userspace/testenv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/xwan-dev/xwan/userspace/bgp"
	"github.com/xwan-dev/xwan/userspace/monitor"
)

// Both event families satisfy Event, so the daemon can pass them on as
// they are.
var (
	_ Event = bgp.SessionDown{}
	_ Event = bgp.PrefixLimitExceeded{}
	_ Event = monitor.Event{}
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeClock only moves when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// pending lists when the live timers fire.
func (c *fakeClock) pending() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, t := range c.timers {
		if !t.stopped {
			out = append(out, t.at)
		}
	}
	return out
}

// Advance moves time and runs the timers that came due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// hookServer is an HTTP receiver run by the test.
type hookServer struct {
	*httptest.Server
	mu    sync.Mutex
	got   []Delivery
	fails int // answer 500 to this many requests first
	calls int
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.calls++
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Token") != "t0k" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if h.fails > 0 {
			h.fails--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var d Delivery
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.got = append(h.got, d)
	}))
	l, err := net.Listen("tcp", notifyAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	h.Server.Listener = l
	h.Server.Start()
	t.Cleanup(h.Close)
	return h
}

// notifyAddr is where the test's receivers listen: a link-local address on
// the loopback of the test binary's own namespace (see TestMain).
const notifyAddr = "169.254.251.1"

func TestMain(m *testing.M) {
	if code, ok := testenv.InOwnNetns(m, notifyAddr+"/32"); !ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func (h *hookServer) webhook() *Webhook {
	return &Webhook{URL: h.URL + "/hook", Header: http.Header{"X-Token": {"t0k"}}}
}

// summaries renders what arrived: "key: s1 | s2 (digest)".
func (h *hookServer) summaries() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, d := range h.got {
		var ss []string
		for _, m := range d.Messages {
			ss = append(ss, m.Summary)
		}
		s := d.Key + ": " + strings.Join(ss, " | ")
		if d.Digest {
			s += " (digest)"
		}
		out = append(out, s)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *hookServer) waitFor(t *testing.T, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d deliveries", len(want)), func() (bool, string) {
		got := h.summaries()
		return slices.Equal(got, want), strings.Join(got, "\n")
	})
}

func msg(key, summary string) Message { return Message{Kind: "test", Key: key, Summary: summary} }

func TestHourlyGathersAfterTheFirst(t *testing.T) {
	clock := newFakeClock()
	hook := newHookServer(t)
	n, err := New([]Channel{{Name: "ops", Sender: hook.webhook(), Frequency: Hourly}}, Options{Clock: clock, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(msg("bgp/msee1", "msee1 down"))
	hook.waitFor(t, "bgp/msee1: msee1 down")

	clock.Advance(10 * time.Minute)
	n.Notify(msg("bgp/msee1", "msee1 up"))
	n.Notify(msg("bgp/msee1", "msee1 down again"))
	clock.Advance(49 * time.Minute)
	// Another subject's first message goes out at once. Deliveries of a
	// channel are sent in order, so had the two msee1 messages gone out
	// early, they would arrive before this one.
	n.Notify(msg("bgp/msee2", "msee2 down"))
	hook.waitFor(t, "bgp/msee1: msee1 down", "bgp/msee2: msee2 down")

	// The hour since the first msee1 message ends: one digest.
	clock.Advance(time.Minute)
	hook.waitFor(t, "bgp/msee1: msee1 down", "bgp/msee2: msee2 down", "bgp/msee1: msee1 up | msee1 down again (digest)")

	// A quiet period (nothing gathered) ends without a delivery; the next
	// message is again immediate, and the one after it is gathered.
	clock.Advance(2 * time.Hour)
	n.Notify(msg("bgp/msee1", "msee1 flaps"))
	n.Notify(msg("bgp/msee1", "msee1 flaps more"))
	hook.waitFor(t, "bgp/msee1: msee1 down", "bgp/msee2: msee2 down", "bgp/msee1: msee1 up | msee1 down again (digest)",
		"bgp/msee1: msee1 flaps")
	// Closing delivers what is gathered instead of losing it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"bgp/msee1: msee1 down", "bgp/msee2: msee2 down", "bgp/msee1: msee1 up | msee1 down again (digest)",
		"bgp/msee1: msee1 flaps", "bgp/msee1: msee1 flaps more (digest)"}
	if got := hook.summaries(); !slices.Equal(got, want) {
		t.Errorf("deliveries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPeriods(t *testing.T) {
	for _, f := range []Frequency{Hourly, Daily, Weekly} {
		t.Run(f.String(), func(t *testing.T) {
			clock := newFakeClock()
			hook := newHookServer(t)
			n, err := New([]Channel{{Name: "ops", Sender: hook.webhook(), Frequency: f}}, Options{Clock: clock, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close(context.Background())
			start := clock.Now()
			n.Notify(msg("k", "first"))
			clock.Advance(time.Minute)
			n.Notify(msg("k", "second"))
			if p := clock.pending(); len(p) != 1 || !p[0].Equal(start.Add(f.Period())) {
				t.Fatalf("digest due at %v, want %v", p, start.Add(f.Period()))
			}
			clock.Advance(f.Period() - 2*time.Minute)
			n.Notify(msg("other", "marker")) // ordering proof as above
			hook.waitFor(t, "k: first", "other: marker")
			clock.Advance(time.Minute)
			hook.waitFor(t, "k: first", "other: marker", "k: second (digest)")
		})
	}
}

func TestImmediateAndMatch(t *testing.T) {
	hook := newHookServer(t)
	lan := newHookServer(t)
	n, err := New([]Channel{
		{Name: "all", Sender: hook.webhook(), Frequency: Immediate},
		{Name: "lan", Sender: lan.webhook(), Frequency: Immediate, Match: func(m Message) bool { return m.Kind == monitor.KindStateChange }},
	}, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	down := bgp.SessionDown{Time: time.Now(), Neighbor: "msee1", Peer: netip.MustParseAddr("169.254.10.2"), Reason: "hold timer expired"}
	n.NotifyEvent(down)
	n.NotifyEvent(down)
	n.NotifyEvent(monitor.Event{Time: time.Now(), Target: "vm1", Address: netip.MustParseAddr("198.18.1.2"), State: monitor.StateDown, Reason: "3 consecutive probes failed"})
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := "bgp/msee1: BGP neighbor msee1 (169.254.10.2) is down: hold timer expired"
	l := "lan-monitor/vm1: LAN monitor: vm1 (198.18.1.2) is down: 3 consecutive probes failed"
	if got := hook.summaries(); !slices.Equal(got, []string{s, s, l}) {
		t.Errorf("all: %q", got)
	}
	if got := lan.summaries(); !slices.Equal(got, []string{l}) {
		t.Errorf("lan: %q", got)
	}
}

func TestWebhookRetriesThenGivesUp(t *testing.T) {
	hook := newHookServer(t)
	hook.fails = 2
	n, err := New([]Channel{{Name: "ops", Sender: hook.webhook()}}, Options{Logger: quiet(), RetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(msg("k", "third time lucky"))
	hook.waitFor(t, "k: third time lucky")
	hook.mu.Lock()
	hook.fails = 100
	hook.mu.Unlock()
	n.Notify(msg("k", "never arrives"))
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	hook.mu.Lock()
	calls := hook.calls
	hook.mu.Unlock()
	if calls != 6 {
		t.Errorf("%d requests, want 3 + 3", calls)
	}
	if ok, failed := testutil.ToFloat64(n.met.deliveries.WithLabelValues("ops", "ok")), testutil.ToFloat64(n.met.deliveries.WithLabelValues("ops", "failed")); ok != 1 || failed != 1 {
		t.Errorf("deliveries ok=%v failed=%v, want 1 and 1", ok, failed)
	}
}

// smtpServer is a minimal SMTP receiver on a listener the test owns.
type smtpServer struct {
	l        net.Listener
	mu       sync.Mutex
	mails    []smtpMail
	rejectTo string // answer 550 to RCPT TO for this address
}

type smtpMail struct {
	from string
	to   []string
	data string
}

func newSMTPServer(t *testing.T) *smtpServer {
	l, err := net.Listen("tcp", notifyAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{l: l}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.serve(c) }()
		}
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { fmt.Fprintf(c, "%s\r\n", line) }
	say("220 test.invalid ESMTP")
	var cur smtpMail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch {
		case verb == "EHLO":
			say("250-test.invalid")
			say("250 8BITMIME")
		case verb == "HELO", verb == "NOOP", verb == "RSET":
			say("250 ok")
		case strings.HasPrefix(strings.ToUpper(line), "MAIL FROM:"):
			cur = smtpMail{from: angle(line)}
			say("250 ok")
		case strings.HasPrefix(strings.ToUpper(line), "RCPT TO:"):
			to := angle(line)
			if to == s.rejectTo {
				say("550 no such user")
				continue
			}
			cur.to = append(cur.to, to)
			say("250 ok")
		case verb == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			cur.data = b.String()
			s.mu.Lock()
			s.mails = append(s.mails, cur)
			s.mu.Unlock()
			say("250 queued")
		case verb == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// angle returns the <address> of a MAIL FROM or RCPT TO line (which may
// carry parameters such as BODY=8BITMIME after it).
func angle(line string) string {
	_, rest, _ := strings.Cut(line, "<")
	addr, _, _ := strings.Cut(rest, ">")
	return addr
}

func (s *smtpServer) received() []smtpMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

func header(data, name string) string {
	for _, line := range strings.Split(data, "\r\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ": "); ok && strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func TestEmailImmediateAndDigest(t *testing.T) {
	srv := newSMTPServer(t)
	clock := newFakeClock()
	email := &Email{Server: srv.l.Addr().String(), From: "xwan@site1.example", To: []string{"noc@example.com", "oncall@example.com"}}
	n, err := New([]Channel{{Name: "noc", Sender: email, Frequency: Daily}}, Options{Clock: clock, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clock.Now()
	n.NotifyEvent(bgp.SessionDown{Time: t0, Neighbor: "msee1", Peer: netip.MustParseAddr("169.254.10.2"), Reason: "hold timer expired"})
	waitFor(t, "the first mail", func() (bool, string) { return len(srv.received()) == 1, fmt.Sprint(len(srv.received())) })
	clock.Advance(time.Hour)
	n.NotifyEvent(bgp.SessionUp{Time: t0.Add(time.Hour), Neighbor: "msee1", Peer: netip.MustParseAddr("169.254.10.2"), PeerASN: 12076})
	n.NotifyEvent(bgp.SessionDown{Time: t0.Add(2 * time.Hour), Neighbor: "msee1", Peer: netip.MustParseAddr("169.254.10.2"), Reason: "peer reset"})
	clock.Advance(23 * time.Hour)
	waitFor(t, "the digest", func() (bool, string) { return len(srv.received()) == 2, fmt.Sprint(len(srv.received())) })
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	mails := srv.received()
	first, digest := mails[0], mails[1]
	if first.from != "xwan@site1.example" || !slices.Equal(first.to, []string{"noc@example.com", "oncall@example.com"}) {
		t.Errorf("envelope from %q to %q", first.from, first.to)
	}
	if s := header(first.data, "Subject"); s != "[xwan] BGP neighbor msee1 (169.254.10.2) is down: hold timer expired" {
		t.Errorf("subject %q", s)
	}
	if !strings.Contains(first.data, "\r\n\r\n2026-03-02T09:00:00Z  BGP neighbor msee1 (169.254.10.2) is down: hold timer expired\r\n") {
		t.Errorf("first mail body:\n%s", first.data)
	}
	if s := header(digest.data, "Subject"); s != "[xwan] 2 more events for bgp/msee1 (daily digest)" {
		t.Errorf("digest subject %q", s)
	}
	for _, want := range []string{
		"Gathered over the daily period for bgp/msee1:",
		"2026-03-02T10:00:00Z  BGP neighbor msee1 (169.254.10.2, AS 12076) is up",
		"2026-03-02T11:00:00Z  BGP neighbor msee1 (169.254.10.2) is down: peer reset",
	} {
		if !strings.Contains(digest.data, want) {
			t.Errorf("digest lacks %q:\n%s", want, digest.data)
		}
	}
	for _, h := range []string{"From", "To", "Date", "Message-ID", "Content-Type"} {
		if header(first.data, h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

func TestEmailRejectedRecipient(t *testing.T) {
	srv := newSMTPServer(t)
	srv.rejectTo = "nobody@example.com"
	email := &Email{Server: srv.l.Addr().String(), From: "xwan@site1.example", To: []string{"nobody@example.com"}}
	err := email.Send(context.Background(), Delivery{Key: "k", Messages: []Message{msg("k", "x")}})
	if err == nil || !strings.Contains(err.Error(), "email: RCPT TO nobody@example.com: 550") {
		t.Errorf("err = %v", err)
	}
	if len(srv.received()) != 0 {
		t.Error("a mail was accepted")
	}
	// RequireTLS against a server without STARTTLS: refused, not sent in clear.
	email = &Email{Server: srv.l.Addr().String(), From: "xwan@site1.example", To: []string{"noc@example.com"}, RequireTLS: true}
	if err := email.Send(context.Background(), Delivery{Messages: []Message{msg("k", "x")}}); err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("RequireTLS: err = %v", err)
	}
}

func TestParseFrequencyAndValidation(t *testing.T) {
	for in, want := range map[string]Frequency{"immediate": Immediate, "Hourly": Hourly, " daily ": Daily, "weekly": Weekly} {
		if got, err := ParseFrequency(in); err != nil || got != want {
			t.Errorf("ParseFrequency(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFrequency("monthly"); err == nil || err.Error() != `notify: frequency "monthly": want immediate, hourly, daily or weekly` {
		t.Errorf("monthly: %v", err)
	}
	hook := &Webhook{URL: "http://127.0.0.1:1/"}
	for _, tc := range []struct {
		chans []Channel
		want  string
	}{
		{[]Channel{{Sender: hook}}, "notify: channel without a name"},
		{[]Channel{{Name: "a", Sender: hook}, {Name: "a", Sender: hook}}, `notify: channel "a": name used twice`},
		{[]Channel{{Name: "a"}}, `notify: channel "a": no sender`},
		{[]Channel{{Name: "a", Sender: hook, Frequency: 9}}, `notify: channel "a": invalid frequency 9`},
	} {
		if _, err := New(tc.chans, Options{}); err == nil || err.Error() != tc.want {
			t.Errorf("New: %v, want %q", err, tc.want)
		}
	}
}
