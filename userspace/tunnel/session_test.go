package tunnel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/xwan-dev/xwan/userspace/pki"
)

var (
	addrA = netip.MustParseAddrPort("198.18.0.1:4500")
	addrB = netip.MustParseAddrPort("198.18.0.2:4500")
)

// waitTimeout bounds every wait of these tests; nothing they wait for
// should take more than a fraction of it.
const waitTimeout = 10 * time.Second

type received struct {
	from    *Session
	t       FrameType
	payload string
}

// frameCollector returns an OnFrame handler and the channel it feeds.
func frameCollector() (FrameHandler, chan received) {
	ch := make(chan received, 64)
	return func(s *Session, t FrameType, payload []byte) {
		ch <- received{s, t, string(payload)}
	}, ch
}

func nextFrame(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case f := <-ch:
		return f
	case <-time.After(waitTimeout):
		t.Fatal("no frame received")
		return received{}
	}
}

func waitDone(t *testing.T, s *Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("session with %s did not end", s.Info().Site)
	}
}

// endpoint is one side of an in-memory session.
func endpoint(n *memNet, id Identity, local, remote netip.AddrPort, site string, role Role) SessionConfig {
	return SessionConfig{
		Identity: id,
		Link:     Link{Name: "wan0", Addr: local},
		Remote:   remote,
		Site:     site,
		Role:     role,
		Socket:   n.socket(local),
	}
}

type sessionResult struct {
	s   *Session
	err error
}

// startSession runs NewSession in the background.
func startSession(ctx context.Context, cfg SessionConfig) <-chan sessionResult {
	ch := make(chan sessionResult, 1)
	go func() {
		s, err := NewSession(ctx, cfg)
		ch <- sessionResult{s, err}
	}()
	return ch
}

func result(t *testing.T, ch <-chan sessionResult) sessionResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.s != nil {
			t.Cleanup(func() { r.s.Close() })
		}
		return r
	case <-time.After(waitTimeout):
		t.Fatal("handshake did not finish")
		return sessionResult{}
	}
}

// connect establishes a session between client a (at addrA, site "a") and
// server b (at addrB, site "b").
func connect(t *testing.T, n *memNet, a, b SessionConfig) (*Session, *Session) {
	t.Helper()
	server := startSession(context.Background(), b)
	client := startSession(context.Background(), a)
	ra, rb := result(t, client), result(t, server)
	if ra.err != nil || rb.err != nil {
		t.Fatalf("handshake: client: %v; server: %v", ra.err, rb.err)
	}
	return ra.s, rb.s
}

func isAppData(b []byte) bool { return len(b) > 13 && b[0] == 23 }

func TestSessionFramesBothWays(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	onA, fromB := frameCollector()
	onB, fromA := frameCollector()
	cfgA := endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient)
	cfgA.OnFrame = onA
	cfgB := endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer)
	cfgB.OnFrame = onB
	a, b := connect(t, n, cfgA, cfgB)

	if got := a.Info(); got != (PathInfo{Site: "b", Link: "wan0", Remote: addrB}) {
		t.Errorf("client info %+v", got)
	}
	if got := b.Info(); got != (PathInfo{Site: "a", Link: "wan0", Remote: addrA}) {
		t.Errorf("server info %+v", got)
	}

	frames := []struct {
		t       FrameType
		payload string
	}{
		{FrameIPv4, "ipv4 packet"}, {FrameIPv6, "ipv6 packet"}, {FrameProbe, "probe"},
		{FrameProbeReply, "probe reply"}, {FrameControl, "control"},
	}
	for _, f := range frames {
		if err := a.Send(f.t, []byte("a→b "+f.payload)); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(f.t, []byte("b→a "+f.payload)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range frames {
		if got := nextFrame(t, fromA); got.from != b || got.t != f.t || got.payload != "a→b "+f.payload {
			t.Errorf("b received %v %q from %p, want %v %q from %p", got.t, got.payload, got.from, f.t, "a→b "+f.payload, b)
		}
		if got := nextFrame(t, fromB); got.from != a || got.t != f.t || got.payload != "b→a "+f.payload {
			t.Errorf("a received %v %q, want %v %q", got.t, got.payload, f.t, "b→a "+f.payload)
		}
	}

	// On the wire: DTLS 1.2 application data records, exactly as large as
	// InnerMTU assumes.
	payload := strings.Repeat("x", 200)
	if err := a.Send(FrameIPv4, []byte(payload)); err != nil {
		t.Fatal(err)
	}
	if got := nextFrame(t, fromA); got.payload != payload {
		t.Fatalf("b received %q", got.payload)
	}
	want := RecordOverhead + FrameHeaderLen + len(payload)
	records := n.waitSent(t, addrA, addrB, 1, func(d []byte) bool { return isAppData(d) && len(d) == want })
	if r := records[0]; r[1] != 0xfe || r[2] != 0xfd {
		t.Errorf("record version %x, want fefd (DTLS 1.2)", r[1:3])
	}

	if err := a.Send(FrameType(9), nil); !errors.Is(err, ErrUnknownFrameType) {
		t.Errorf("Send(type 9) = %v, want ErrUnknownFrameType", err)
	}
}

func TestSessionRefusesPeers(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	tests := []struct {
		name         string
		client       Identity // client is site a, expecting site b
		server       Identity // server is site b, expecting site a
		clientErr    error
		serverErr    error
		clientRefuse bool // the client refused the server (else the other way)
	}{
		{"client from another CA", other.identity("a", ca), ca.identity("b", ca), ErrRejectedByPeer, pki.ErrUnknownCA, false},
		{"client is another site", ca.identity("c", ca), ca.identity("b", ca), ErrRejectedByPeer, pki.ErrWrongSite, false},
		{"server from another CA", ca.identity("a", ca), other.identity("b", ca), pki.ErrUnknownCA, ErrRejectedByPeer, true},
		{"server is another site", ca.identity("a", ca), ca.identity("c", ca), pki.ErrWrongSite, ErrRejectedByPeer, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newMemNet()
			server := startSession(context.Background(), endpoint(n, tt.server, addrB, addrA, "a", RoleServer))
			client := startSession(context.Background(), endpoint(n, tt.client, addrA, addrB, "b", RoleClient))
			rc, rs := result(t, client), result(t, server)
			if !errors.Is(rc.err, tt.clientErr) || !isAuthFailure(rc.err) {
				t.Errorf("client: %v, want %v", rc.err, tt.clientErr)
			}
			if !errors.Is(rs.err, tt.serverErr) || !isAuthFailure(rs.err) {
				t.Errorf("server: %v, want %v", rs.err, tt.serverErr)
			}
			var refused *pki.AuthError
			if errors.As(rc.err, &refused) != tt.clientRefuse || errors.As(rs.err, &refused) == tt.clientRefuse {
				t.Errorf("the wrong side refused: client %v, server %v", rc.err, rs.err)
			}
		})
	}
}

// rawClient runs a handshake from addrA with a plain pion client.
func rawClient(t *testing.T, n *memNet, opts ...dtls.ClientOption) error {
	t.Helper()
	pc, err := n.listen(addrA)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dtls.ClientWithOptions(pc, net.UDPAddrFromAddrPort(addrB), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return conn.HandshakeContext(ctx)
}

func TestSessionRefusesClientWithoutCertificate(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	server := startSession(context.Background(), endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer))
	if err := rawClient(t, n, dtls.WithInsecureSkipVerify(true)); err == nil {
		t.Error("a client without a certificate completed a handshake")
	}
	if r := result(t, server); !errors.Is(r.err, pki.ErrNoCertificate) || !isAuthFailure(r.err) {
		t.Errorf("server: %v, want pki.ErrNoCertificate", r.err)
	}
}

func TestSessionOnlyAES128GCM(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	server := startSession(context.Background(), endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer))
	err := rawClient(t, n,
		dtls.WithCertificates(ca.identity("a", ca).Certificate),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA))
	if err == nil {
		t.Error("a client offering only AES-256-CBC completed a handshake")
	}
	if r := result(t, server); r.err == nil || isAuthFailure(r.err) {
		t.Errorf("server: %v, want a handshake failure that is not about certificates", r.err)
	}
}

func TestSessionKeepalive(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	const interval = 100 * time.Millisecond
	onB, fromA := frameCollector()
	cfgA := endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient)
	cfgA.KeepaliveInterval = interval
	cfgB := endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer)
	cfgB.KeepaliveInterval = interval
	cfgB.OnFrame = onB
	a, b := connect(t, n, cfgA, cfgB)

	// Idle sessions send keepalives (an empty control frame: the smallest
	// record) both ways, and stay up well past SilentIntervals.
	keepalive := func(d []byte) bool { return isAppData(d) && len(d) == RecordOverhead+FrameHeaderLen }
	n.waitSent(t, addrA, addrB, 2*SilentIntervals, keepalive)
	n.waitSent(t, addrB, addrA, 2*SilentIntervals, keepalive)
	if a.Err() != nil || b.Err() != nil {
		t.Fatalf("idle sessions with keepalives ended: %v, %v", a.Err(), b.Err())
	}
	// Keepalives are not frames for the user. Records arrive in order, so
	// once this one is in, the keepalives before it were handled.
	if err := a.Send(FrameControl, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	if got := nextFrame(t, fromA); got.t != FrameControl || got.payload != "marker" {
		t.Errorf("first frame passed to OnFrame: %v %q, want the marker", got.t, got.payload)
	}

	// b goes silent (as seen from a): a gives up after SilentIntervals and
	// tells b with close_notify.
	silentSince := time.Now()
	n.setDrop(func(from, _ netip.AddrPort) bool { return from == addrB })
	waitDone(t, a)
	if !errors.Is(a.Err(), ErrPeerSilent) {
		t.Errorf("a ended with %v, want ErrPeerSilent", a.Err())
	}
	// a can have heard from b up to one interval before the drop.
	if waited := time.Since(silentSince); waited < (SilentIntervals-1)*interval {
		t.Errorf("a gave up after %v of silence, before %d intervals of %v", waited, SilentIntervals, interval)
	}
	waitDone(t, b)
	if !errors.Is(b.Err(), ErrPeerClosed) {
		t.Errorf("b ended with %v, want ErrPeerClosed", b.Err())
	}
}

func TestSessionCloseNotify(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	// The default keepalive (10 s) makes sure b learns of the close from
	// the alert, not from silence.
	a, b := connect(t, n,
		endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient),
		endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer))

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(a.Err(), ErrClosed) {
		t.Errorf("a ended with %v, want ErrClosed", a.Err())
	}
	sent := n.sent(addrA, addrB)
	last := sent[len(sent)-1]
	// An encrypted alert: content type 21, epoch 1, 2 bytes of alert.
	if last[0] != 21 || last[3] != 0 || last[4] != 1 || len(last) != RecordOverhead+2 {
		t.Errorf("last datagram from a: %x, want an encrypted alert record", last)
	}
	waitDone(t, b)
	if !errors.Is(b.Err(), ErrPeerClosed) {
		t.Errorf("b ended with %v, want ErrPeerClosed", b.Err())
	}
	if err := a.Send(FrameIPv4, []byte("late")); err == nil {
		t.Error("Send on a closed session succeeded")
	}
	// The socket is closed when Done is: the address is free again.
	pc, err := n.listen(addrA)
	if err != nil {
		t.Errorf("address still bound after Close: %v", err)
	} else {
		pc.Close()
	}
}

func TestSessionConfigChecks(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	good := endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient)
	tests := []struct {
		name   string
		change func(*SessionConfig)
	}{
		{"keepalive at the NAT limit", func(c *SessionConfig) { c.KeepaliveInterval = MaxKeepaliveInterval }},
		{"negative keepalive", func(c *SessionConfig) { c.KeepaliveInterval = -time.Second }},
		{"negative handshake timeout", func(c *SessionConfig) { c.HandshakeTimeout = -time.Second }},
		{"invalid site", func(c *SessionConfig) { c.Site = "B" }},
		{"no remote", func(c *SessionConfig) { c.Remote = netip.AddrPort{} }},
		{"no certificate", func(c *SessionConfig) { c.Identity.Certificate.Certificate = nil }},
		{"no CA", func(c *SessionConfig) { c.Identity.Roots = nil }},
		{"no link address", func(c *SessionConfig) { c.Socket = nil; c.Link.Addr = netip.AddrPort{} }},
		{"invalid role", func(c *SessionConfig) { c.Role = 7 }},
		{"device binding without a name", func(c *SessionConfig) { c.Link = Link{Addr: addrA, BindToDevice: true} }},
	}
	for _, tt := range tests {
		cfg := good
		tt.change(&cfg)
		if _, err := NewSession(context.Background(), cfg); err == nil {
			t.Errorf("%s: NewSession accepted the config", tt.name)
		}
		if _, err := NewPath(PathConfig{Session: cfg}); err == nil {
			t.Errorf("%s: NewPath accepted the config", tt.name)
		}
	}
	cfg := good
	cfg.KeepaliveInterval = MaxKeepaliveInterval - time.Second
	if err := cfg.check(); err != nil || cfg.HandshakeTimeout != DefaultHandshakeTimeout {
		t.Errorf("check(keepalive 24s) = %v, handshake timeout %v", err, cfg.HandshakeTimeout)
	}
	cfg = good
	if err := cfg.check(); err != nil || cfg.KeepaliveInterval != DefaultKeepaliveInterval {
		t.Errorf("check() = %v, keepalive %v, want the default", err, cfg.KeepaliveInterval)
	}
	badListeners := []ListenerConfig{
		{Identity: good.Identity, Link: Link{Name: "wan0", Addr: addrA}, KeepaliveInterval: time.Minute},
		{Identity: good.Identity, Link: Link{Addr: addrA, BindToDevice: true}},
		{Identity: good.Identity, Link: Link{Name: "wan0"}},
		{Link: Link{Name: "wan0", Addr: addrA}},
	}
	for _, cfg := range badListeners {
		if ln, err := Listen(cfg); err == nil {
			ln.Close()
			t.Errorf("Listen accepted %+v", cfg)
		}
	}
	for _, b := range []Backoff{{Min: -1, Max: time.Second}, {Min: time.Second, Max: time.Millisecond}} {
		if _, err := NewPath(PathConfig{Session: good, Backoff: b}); err == nil {
			t.Errorf("NewPath accepted backoff %+v", b)
		}
	}
}
