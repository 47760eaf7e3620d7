package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// diagnostics collects, per peer address, what gobgp knows about why a
// session is not up. gobgp's API has no "last error": the reasons only
// appear in its log calls, so xwan reads them from there.
type diagnostics struct {
	now func() time.Time

	mu    sync.Mutex
	peers map[string]*peerDiag
}

type peerDiag struct {
	lastError   string
	lastErrorAt time.Time
	// downReason is the reason of the last Established -> down transition,
	// consumed by the SessionDown event.
	downReason string
	// prefixLimit is set when gobgp reports the received-prefix limit.
	prefixLimit bool
}

func newDiagnostics(now func() time.Time) *diagnostics {
	return &diagnostics{now: now, peers: map[string]*peerDiag{}}
}

func (d *diagnostics) peer(addr string) *peerDiag {
	p := d.peers[addr]
	if p == nil {
		p = &peerDiag{}
		d.peers[addr] = p
	}
	return p
}

func (d *diagnostics) setError(addr, msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.peer(addr)
	p.lastError = msg
	p.lastErrorAt = d.now()
}

func (d *diagnostics) setDown(addr, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.peer(addr)
	p.downReason = reason
	p.lastError = reason
	p.lastErrorAt = d.now()
}

func (d *diagnostics) setPrefixLimit(addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.peer(addr).prefixLimit = true
}

// takeDown returns and clears the down reason and the prefix-limit flag.
func (d *diagnostics) takeDown(addr string) (reason string, prefixLimit bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.peer(addr)
	reason, prefixLimit = p.downReason, p.prefixLimit
	p.downReason, p.prefixLimit = "", false
	return reason, prefixLimit
}

func (d *diagnostics) lastError(addr string) (string, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.peer(addr)
	return p.lastError, p.lastErrorAt
}

// humanReason turns gobgp's state-change reasons into words an operator
// can act on.
func humanReason(r string) string {
	switch {
	case r == "hold-timer-expired":
		return "hold timer expired (no keepalive or update from the peer)"
	case r == "admin-down":
		return "administratively disabled"
	case r == "read-failed":
		return "connection closed by the peer or read error"
	case r == "write-failed":
		return "write to the peer failed"
	case r == "dying":
		return "BGP stopped"
	case strings.HasPrefix(r, "notification-received "):
		return "received NOTIFICATION " + strings.TrimPrefix(r, "notification-received ")
	case strings.HasPrefix(r, "notification-sent "):
		return "sent NOTIFICATION " + strings.TrimPrefix(r, "notification-sent ")
	}
	return r
}

// connectError explains a failed TCP connect. With TCP MD5 a wrong or
// missing password makes the peer's kernel drop the segments silently, so
// a timeout is the only symptom xwan can see.
func connectError(v any) string {
	err, _ := v.(error)
	if err == nil {
		return fmt.Sprintf("connect failed: %v", v)
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connect: connection refused (the peer does not accept BGP from this address)"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "connect: peer unreachable (" + err.Error() + ")"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "connect: no answer from the peer (TCP MD5 password mismatch, filtered, or peer down)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "connect: local address not configured on this host (" + err.Error() + ")"
	}
	return "connect: " + err.Error()
}

// gobgpLogger adapts gobgp's logger to log/slog and feeds diagnostics.
// gobgp calls it with its own locks held: it must never call back into
// gobgp.
type gobgpLogger struct {
	log  *slog.Logger
	diag *diagnostics
}

func (l *gobgpLogger) observe(msg string, f gobgplog.Fields) {
	key, _ := f["Key"].(string)
	if key == "" {
		return
	}
	switch msg {
	case "Peer Down":
		if r, ok := f["Reason"].(string); ok {
			l.diag.setDown(key, humanReason(r))
		}
	case "failed to connect":
		l.diag.setError(key, connectError(f["Error"]))
	case "prefix limit reached":
		// The warning at the threshold carries "Pct"; the limit itself
		// does not.
		if _, warn := f["Pct"]; !warn {
			l.diag.setPrefixLimit(key)
		}
	}
}

func (l *gobgpLogger) forward(level slog.Level, msg string, f gobgplog.Fields) {
	l.observe(msg, f)
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]any, 0, 2*len(f)+2)
	attrs = append(attrs, "component", "gobgp")
	for k, v := range f {
		attrs = append(attrs, k, v)
	}
	l.log.Log(context.Background(), level, msg, attrs...)
}

func (l *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	l.forward(slog.LevelError, msg, f)
	panic(msg)
}

// Fatal does not exit: gobgp returns an error after it (e.g. a policy it
// refused), and the daemon must survive that.
func (l *gobgpLogger) Fatal(msg string, f gobgplog.Fields) { l.forward(slog.LevelError, msg, f) }
func (l *gobgpLogger) Error(msg string, f gobgplog.Fields) { l.forward(slog.LevelError, msg, f) }
func (l *gobgpLogger) Warn(msg string, f gobgplog.Fields) {
	level := slog.LevelWarn
	if msg == "Closed an accepted connection" {
		// The peer retrying while gobgp holds the session idle (5 s after
		// every drop, or for good after a prefix limit): expected, and
		// once a second.
		level = slog.LevelDebug
	}
	l.forward(level, msg, f)
}

// Info is chatty in gobgp (every configuration step): debug level here.
func (l *gobgpLogger) Info(msg string, f gobgplog.Fields) { l.forward(slog.LevelDebug, msg, f) }

// Debug messages are only read for diagnostics (connect failures); gobgp's
// debug output dumps every message and is not forwarded.
func (l *gobgpLogger) Debug(msg string, f gobgplog.Fields) { l.observe(msg, f) }

func (l *gobgpLogger) SetLevel(gobgplog.LogLevel) {}

// GetLevel claims debug so that gobgp reports connect failures, which it
// only logs at that level.
func (l *gobgpLogger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }
