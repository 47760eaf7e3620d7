package tunnel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/pki"
)

// TestListener serves several peers on one socket, in a network namespace:
// the listener (site a) in goNS, dialing paths in peerNS, each from its own
// port, which is all the demultiplexer has to tell them apart.
func TestListener(t *testing.T) {
	goNS, peerNS := wanPair(t)
	ca := newTestCA(t)
	other := newTestCA(t)

	events := newEventLog()
	onFrame, atListener := frameCollector()
	var ln *Listener
	err := goNS.Do(func() error {
		var err error
		ln, err = Listen(ListenerConfig{
			Identity:  ca.identity("a", ca),
			Link:      Link{Name: "wan0", Addr: netip.AddrPortFrom(goWAN, 4500), BindToDevice: true},
			AllowSite: func(site string) bool { return site == "b" || site == "c" },
			OnFrame:   onFrame,
			OnEvent:   events.add,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if got := ln.Addr(); got != netip.AddrPortFrom(goWAN, 4500) {
		t.Errorf("listener address %v", got)
	}

	type peer struct {
		site   string
		id     Identity
		local  netip.AddrPort
		path   *Path
		events *eventLog
		frames chan received
		stop   func()
	}
	dial := func(site string, id Identity, port uint16) *peer {
		p := &peer{site: site, id: id, local: netip.AddrPortFrom(peerWAN, port), events: newEventLog()}
		var onFrame FrameHandler
		onFrame, p.frames = frameCollector()
		link := Link{Name: "wan0", Addr: p.local, BindToDevice: true}
		var err error
		p.path, err = NewPath(PathConfig{
			Session: SessionConfig{
				Identity: id,
				Link:     link,
				Remote:   ln.Addr(),
				Site:     "a",
				OnFrame:  onFrame,
				Socket:   socketIn(peerNS, link),
			},
			Backoff: Backoff{Min: time.Hour, Max: time.Hour}, // one attempt is enough here
			OnEvent: p.events.add,
		})
		if err != nil {
			t.Fatal(err)
		}
		p.stop = runPath(t, p.path)
		return p
	}
	b := dial("b", ca.identity("b", ca), 5001)
	c := dial("c", ca.identity("c", ca), 5002)
	notAllowed := dial("d", ca.identity("d", ca), 5003)
	foreign := dial("b", other.identity("b", ca), 5004)

	for _, p := range []*peer{b, c} {
		e := events.waitFor(t, "listener connect", isEvent("connect", p.local)).(Connect)
		if e.Site != p.site || e.Link != "wan0" {
			t.Errorf("listener Connect %+v, want site %s on wan0", e, p.site)
		}
		p.events.waitFor(t, "path connect", isEvent("connect", ln.Addr()))
	}
	for _, tt := range []struct {
		p    *peer
		want error
	}{{notAllowed, pki.ErrWrongSite}, {foreign, pki.ErrUnknownCA}} {
		e := events.waitFor(t, "listener auth failure", isEvent("auth-failure", tt.p.local)).(AuthFailure)
		if !errors.Is(e.Reason, tt.want) || e.Site != "" {
			t.Errorf("listener AuthFailure %+v, want reason %v and no site", e, tt.want)
		}
		pe := tt.p.events.waitFor(t, "path auth failure", isEvent("auth-failure", ln.Addr())).(AuthFailure)
		if !errors.Is(pe.Reason, ErrRejectedByPeer) {
			t.Errorf("path of site %s: AuthFailure %+v, want ErrRejectedByPeer", tt.p.site, pe)
		}
	}

	// Frames both ways, each to the right peer.
	for _, p := range []*peer{b, c} {
		if err := p.path.Send(FrameIPv4, []byte("from "+p.site)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	for range 2 {
		f := nextFrame(t, atListener)
		got[f.from.Info().Site] = f.payload
		if f.from != ln.Session(f.from.Info().Remote) {
			t.Errorf("frame from a session the listener does not list")
		}
	}
	if got["b"] != "from b" || got["c"] != "from c" {
		t.Errorf("listener received %q", got)
	}
	for _, p := range []*peer{b, c} {
		if err := ln.Session(p.local).Send(FrameProbe, []byte("to "+p.site)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*peer{b, c} {
		if f := nextFrame(t, p.frames); f.t != FrameProbe || f.payload != "to "+p.site {
			t.Errorf("site %s received %v %q", p.site, f.t, f.payload)
		}
	}

	// b leaves: its session ends with its close_notify, c's stays.
	b.stop()
	e := events.waitFor(t, "disconnect of b", isEvent("disconnect", b.local)).(Disconnect)
	if !errors.Is(e.Reason, ErrPeerClosed) || e.Site != "b" {
		t.Errorf("Disconnect %+v, want site b closed by the peer", e)
	}
	if s := ln.Session(b.local); s != nil {
		t.Errorf("listener still lists b's session")
	}
	if ln.Session(c.local) == nil {
		t.Fatal("c's session is gone")
	}

	// Closing the listener closes c's session, with a Disconnect on both
	// sides.
	if err := ln.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	e = events.waitFor(t, "disconnect of c", isEvent("disconnect", c.local)).(Disconnect)
	if !errors.Is(e.Reason, ErrClosed) {
		t.Errorf("Disconnect of c %+v, want ErrClosed", e)
	}
	pe := c.events.waitFor(t, "path disconnect", isEvent("disconnect", ln.Addr())).(Disconnect)
	if !errors.Is(pe.Reason, ErrPeerClosed) {
		t.Errorf("c's path: Disconnect %+v, want ErrPeerClosed", pe)
	}

	want := map[netip.AddrPort][]string{
		b.local:          {"connect", "disconnect"},
		c.local:          {"connect", "disconnect"},
		notAllowed.local: {"auth-failure"},
		foreign.local:    {"auth-failure"},
	}
	for remote, kinds := range want {
		if got := events.kinds(remote); !slices.Equal(got, kinds) {
			t.Errorf("listener events for %v: %q, want %q", remote, got, kinds)
		}
	}
}

// TestListenerPeerRestart: a peer that crashes and dials again from the
// same address and port is served at once. If the listener still has the
// old session, the new handshake gives it new keys (the session goes on:
// no events); if the old session has gone silent first, the new one is a
// new session (Disconnect, Connect). Either way frames flow again.
func TestListenerPeerRestart(t *testing.T) {
	goNS, peerNS := wanPair(t)
	ca := newTestCA(t)
	const keepalive = 100 * time.Millisecond
	events := newEventLog()
	onFrame, atListener := frameCollector()
	var ln *Listener
	err := goNS.Do(func() error {
		var err error
		ln, err = Listen(ListenerConfig{
			Identity:          ca.identity("a", ca),
			Link:              Link{Name: "wan0", Addr: netip.AddrPortFrom(goWAN, 4500)},
			KeepaliveInterval: keepalive,
			OnFrame:           onFrame,
			OnEvent:           events.add,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	local := netip.AddrPortFrom(peerWAN, 5001)
	link := Link{Name: "wan0", Addr: local}
	sockets := make(chan net.PacketConn, 3)
	cfg := SessionConfig{
		Identity:          ca.identity("b", ca),
		Link:              link,
		Remote:            ln.Addr(),
		Site:              "a",
		KeepaliveInterval: keepalive,
		Socket: func() (net.PacketConn, error) {
			pc, err := socketIn(peerNS, link)()
			if err == nil {
				sockets <- pc
			}
			return pc, err
		},
	}
	restart := func(t *testing.T, waitSilence bool) {
		for len(sockets) > 0 {
			<-sockets
		}
		first, err := NewSession(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		events.waitFor(t, "first connect", isEvent("connect", local))
		(<-sockets).Close() // the peer crashes: nothing more from it, not even close_notify
		if waitSilence {
			waitDone(t, first)
			events.waitFor(t, "disconnect", isEvent("disconnect", local))
		}
		second, err := NewSession(context.Background(), cfg)
		if err != nil {
			t.Fatalf("second handshake from the same address: %v", err)
		}
		defer second.Close()
		if err := second.Send(FrameIPv4, []byte("after restart")); err != nil {
			t.Fatal(err)
		}
		f := nextFrame(t, atListener)
		for f.payload != "after restart" {
			f = nextFrame(t, atListener)
		}
		if f.from != ln.Session(local) {
			t.Error("the frame came from a session the listener does not list")
		}
		kinds := events.kinds(local)
		if !slices.Equal(kinds, []string{"connect"}) && !slices.Equal(kinds, []string{"connect", "disconnect", "connect"}) {
			t.Errorf("events %q", kinds)
		}
		if waitSilence {
			d := events.waitFor(t, "disconnect", isEvent("disconnect", local)).(Disconnect)
			if !errors.Is(d.Reason, ErrPeerSilent) {
				t.Errorf("the old session ended with %v, want ErrPeerSilent", d.Reason)
			}
		}
		if s := ln.Session(local); s == nil {
			t.Error("listener lists no session for the restarted peer")
		} else {
			s.Close()
			events.waitFor(t, "disconnect", func(e Event) bool { return kindOf(e) == "disconnect" && len(events.kinds(local)) >= 2 })
		}
	}
	t.Run("at once", func(t *testing.T) { restart(t, false) })
	events.reset()
	t.Run("after the old session went silent", func(t *testing.T) { restart(t, true) })
}
