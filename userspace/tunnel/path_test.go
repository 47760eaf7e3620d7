package tunnel

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/pki"
)

func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(waitTimeout):
		t.Fatal("no event")
		return nil
	}
}

// runPath starts p.Run and stops it when the test ends.
func runPath(t *testing.T, p *Path) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("Path.Run did not return")
		}
	}
	t.Cleanup(stop)
	return stop
}

// newTestPath is a path from site a at addrA to site b at addrB.
func newTestPath(t *testing.T, n *memNet, id Identity, keepalive time.Duration) (*Path, chan Event) {
	t.Helper()
	events := make(chan Event, 64)
	cfg := endpoint(n, id, addrA, addrB, "b", RoleClient)
	cfg.KeepaliveInterval = keepalive
	p, err := NewPath(PathConfig{
		Session: cfg,
		Backoff: Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		OnEvent: func(e Event) { events <- e },
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, events
}

var pathAB = PathInfo{Site: "b", Link: "wan0", Remote: addrB}

func TestPathAuthFailure(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	tests := []struct {
		name   string
		client Identity
		server Identity
		want   error
	}{
		{"peer has a certificate from another CA", ca.identity("a", ca), other.identity("b", ca), pki.ErrUnknownCA},
		{"peer presents another site's certificate", ca.identity("a", ca), ca.identity("c", ca), pki.ErrWrongSite},
		{"peer refuses this site's certificate", other.identity("a", ca), ca.identity("b", ca), ErrRejectedByPeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newMemNet()
			server := startSession(context.Background(), endpoint(n, tt.server, addrB, addrA, "a", RoleServer))
			p, events := newTestPath(t, n, tt.client, 0)
			runPath(t, p)
			e := nextEvent(t, events)
			failure, ok := e.(AuthFailure)
			if !ok {
				t.Fatalf("first event %T %+v, want AuthFailure", e, e)
			}
			if failure.PathInfo != pathAB || failure.Time.IsZero() || !errors.Is(failure.Reason, tt.want) {
				t.Errorf("AuthFailure %+v, want path %+v and reason %v", failure, pathAB, tt.want)
			}
			if r := result(t, server); r.err == nil {
				t.Error("the server side completed the handshake")
			}
			if err := p.Send(FrameIPv4, []byte("x")); !errors.Is(err, ErrPathDown) {
				t.Errorf("Send on a path that never came up = %v, want ErrPathDown", err)
			}
		})
	}
}

// restartableServer is site b's end at addrB, which a test can crash (its
// socket disappears, nothing is sent) and start again.
type restartableServer struct {
	t       *testing.T
	n       *memNet
	cfg     SessionConfig
	sockets chan net.PacketConn
	result  <-chan sessionResult
}

func newRestartableServer(t *testing.T, n *memNet, id Identity, keepalive time.Duration, onFrame FrameHandler) *restartableServer {
	srv := &restartableServer{t: t, n: n, sockets: make(chan net.PacketConn, 2)}
	srv.cfg = endpoint(n, id, addrB, addrA, "a", RoleServer)
	srv.cfg.KeepaliveInterval = keepalive
	srv.cfg.OnFrame = onFrame
	srv.cfg.Socket = func() (net.PacketConn, error) {
		pc, err := n.listen(addrB)
		if err == nil {
			srv.sockets <- pc
		}
		return pc, err
	}
	return srv
}

func (srv *restartableServer) start() {
	srv.result = startSession(context.Background(), srv.cfg)
}

func (srv *restartableServer) session() *Session {
	r := result(srv.t, srv.result)
	if r.err != nil {
		srv.t.Fatalf("server handshake: %v", r.err)
	}
	return r.s
}

func (srv *restartableServer) crash() {
	(<-srv.sockets).Close()
}

func TestPathRehandshakesAfterPeerRestart(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	const keepalive = 100 * time.Millisecond
	onB, atB := frameCollector()
	srv := newRestartableServer(t, n, ca.identity("b", ca), keepalive, onB)
	srv.start()
	p, events := newTestPath(t, n, ca.identity("a", ca), keepalive)
	runPath(t, p)

	if e, ok := nextEvent(t, events).(Connect); !ok || e.PathInfo != pathAB || e.Time.IsZero() {
		t.Fatalf("first event %+v, want Connect on %+v", e, pathAB)
	}
	first := srv.session()
	if err := p.Send(FrameIPv4, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if f := nextFrame(t, atB); f.from != first || f.payload != "before" {
		t.Fatalf("b received %q from %p", f.payload, f.from)
	}

	srv.crash()
	srv.start() // back at once, with no memory of the session

	e := nextEvent(t, events)
	if d, ok := e.(Disconnect); !ok || d.PathInfo != pathAB || !errors.Is(d.Reason, ErrPeerSilent) {
		t.Fatalf("event after the restart %T %+v, want Disconnect because the peer went silent", e, e)
	}
	e = nextEvent(t, events)
	if _, ok := e.(Connect); !ok {
		t.Fatalf("event after the Disconnect %T %+v, want Connect", e, e)
	}
	second := srv.session()
	if err := p.Send(FrameIPv4, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if f := nextFrame(t, atB); f.from != second || f.payload != "after" {
		t.Fatalf("b received %q from %p, want it from the new session %p", f.payload, f.from, second)
	}
	waitDone(t, first)
}

func TestPathStop(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	srv := newRestartableServer(t, n, ca.identity("b", ca), 0, nil)
	srv.start()
	p, events := newTestPath(t, n, ca.identity("a", ca), 0)
	stop := runPath(t, p)
	if e, ok := nextEvent(t, events).(Connect); !ok {
		t.Fatalf("first event %+v, want Connect", e)
	}
	b := srv.session()

	stop()
	e := nextEvent(t, events)
	if d, ok := e.(Disconnect); !ok || d.PathInfo != pathAB || !errors.Is(d.Reason, ErrClosed) {
		t.Fatalf("event after stop %T %+v, want Disconnect with ErrClosed", e, e)
	}
	waitDone(t, b)
	if !errors.Is(b.Err(), ErrPeerClosed) {
		t.Errorf("peer's session ended with %v, want ErrPeerClosed (close_notify)", b.Err())
	}
	if err := p.Send(FrameIPv4, nil); !errors.Is(err, ErrPathDown) {
		t.Errorf("Send after stop = %v, want ErrPathDown", err)
	}
	select {
	case e := <-events:
		t.Errorf("event after Run returned: %+v", e)
	default:
	}
}

func TestPathReconnectsAfterPeerCloses(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	srv := newRestartableServer(t, n, ca.identity("b", ca), 0, nil)
	srv.start()
	p, events := newTestPath(t, n, ca.identity("a", ca), 0)
	runPath(t, p)
	if e, ok := nextEvent(t, events).(Connect); !ok {
		t.Fatalf("first event %+v, want Connect", e)
	}
	b := srv.session()

	b.Close()
	srv.start() // b's address is free once Close returns
	e := nextEvent(t, events)
	if d, ok := e.(Disconnect); !ok || !errors.Is(d.Reason, ErrPeerClosed) {
		t.Fatalf("event after the peer closed %T %+v, want Disconnect with ErrPeerClosed", e, e)
	}
	if e := nextEvent(t, events); !isConnect(e) {
		t.Fatalf("event after the Disconnect %T %+v, want Connect", e, e)
	}
	srv.session()
}

func isConnect(e Event) bool {
	_, ok := e.(Connect)
	return ok
}
