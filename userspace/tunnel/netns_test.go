package tunnel

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

// Addresses of the two ends of wanPair.
var (
	goWAN   = netip.MustParseAddr("198.18.0.1")
	peerWAN = netip.MustParseAddr("198.18.0.2")
)

// wanPair makes two namespaces joined by a veth pair whose ends are both
// named wan0: goWAN/30 in the first (the side under test), peerWAN/30 in
// the second (its peers). Everything goes away when the test ends.
func wanPair(t *testing.T) (goNS, peerNS *testenv.Netns) {
	t.Helper()
	testenv.RequireRoot(t)
	goNS = testenv.NewNetns(t, "xtun")
	peerNS = testenv.NewNetns(t, "xtun")
	testenv.Link(t, goNS, "wan0", goWAN.String()+"/30", peerNS, "wan0", peerWAN.String()+"/30")
	return goNS, peerNS
}

// socketIn returns a SessionConfig.Socket that binds link inside ns.
func socketIn(ns *testenv.Netns, link Link) func() (net.PacketConn, error) {
	return func() (net.PacketConn, error) {
		var pc net.PacketConn
		err := ns.Do(func() error {
			var err error
			pc, err = listenUDP(link)
			return err
		})
		return pc, err
	}
}

// eventLog records events from any number of goroutines.
type eventLog struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{}, 1)} }

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *eventLog) reset() {
	l.mu.Lock()
	l.events = nil
	l.mu.Unlock()
}

func (l *eventLog) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// waitFor returns the first logged event that matches, waiting for it.
func (l *eventLog) waitFor(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		for _, e := range l.snapshot() {
			if match(e) {
				return e
			}
		}
		select {
		case <-l.changed:
		case <-timeout.C:
			t.Fatalf("no %s event; events: %+v", what, l.snapshot())
		}
	}
}

// kinds lists the types of the events about remote, in order.
func (l *eventLog) kinds(remote netip.AddrPort) []string {
	var out []string
	for _, e := range l.snapshot() {
		if pathOf(e).Remote == remote {
			out = append(out, kindOf(e))
		}
	}
	return out
}

// waitKinds waits until the events about remote are exactly want.
func (l *eventLog) waitKinds(t *testing.T, remote netip.AddrPort, want ...string) {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for !slices.Equal(l.kinds(remote), want) {
		select {
		case <-l.changed:
		case <-timeout.C:
			t.Fatalf("events about %v: %q, want %q", remote, l.kinds(remote), want)
		}
	}
}

func pathOf(e Event) PathInfo {
	switch e := e.(type) {
	case Connect:
		return e.PathInfo
	case Disconnect:
		return e.PathInfo
	case AuthFailure:
		return e.PathInfo
	case HandshakeFailure:
		return e.PathInfo
	}
	panic("unknown event")
}

func kindOf(e Event) string {
	switch e.(type) {
	case Connect:
		return "connect"
	case Disconnect:
		return "disconnect"
	case AuthFailure:
		return "auth-failure"
	case HandshakeFailure:
		return "handshake-failure"
	}
	panic("unknown event")
}

// isEvent returns a matcher for events of a kind about remote.
func isEvent(kind string, remote netip.AddrPort) func(Event) bool {
	return func(e Event) bool { return kindOf(e) == kind && pathOf(e).Remote == remote }
}
