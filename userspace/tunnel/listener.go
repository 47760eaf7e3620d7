package tunnel

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/xwan-dev/xwan/userspace/pki"
)

// ListenerConfig describes the server side of one WAN link.
type ListenerConfig struct {
	Identity Identity
	Link     Link // Link.Addr is the address and port to listen on
	// AllowSite decides which sites may connect; nil allows every site
	// with a certificate from the mesh CA. A listener cannot expect one
	// site per remote address: behind NAT, a peer's address is only known
	// once it has connected.
	AllowSite func(site string) bool

	KeepaliveInterval time.Duration // as in SessionConfig
	HandshakeTimeout  time.Duration // as in SessionConfig
	OnFrame           FrameHandler
	// OnEvent is called from the goroutine serving the peer the event is
	// about; it must not block long.
	OnEvent func(Event)
}

// Listener accepts sessions from many peers on one UDP socket.
//
// The demultiplexing by remote address is pion's: dtls.ListenWithOptions
// runs one socket reader that hands each remote address its own
// net.PacketConn, creates one only for a datagram that starts with a
// handshake record, and takes socket options through WithListenConfig
// (here: buffers and SO_BINDTODEVICE). pion/transport's udp.ListenConfig
// does the same demultiplexing but cannot set socket options. The price of
// pion's listener is one dtls.Config for all peers, so the expected site is
// decided by site name (AllowSite), not by remote address.
//
// A peer that restarts and dials again from the same address and port is
// only served once its previous session here has ended, by close_notify or
// after SilentIntervals keepalive intervals: until then pion's demultiplexer
// hands its new handshake to the old session, which ignores it.
type Listener struct {
	cfg ListenerConfig
	ln  net.Listener
	// ctx bounds the handshakes in progress; cancel aborts them on Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and one goroutine per peer

	mu       sync.Mutex
	closed   bool
	sessions map[netip.AddrPort]*Session
}

// Listen binds the link's socket and starts accepting.
func Listen(cfg ListenerConfig) (*Listener, error) {
	if err := cfg.Identity.check(); err != nil {
		return nil, err
	}
	if err := cfg.Link.check(true); err != nil {
		return nil, err
	}
	var err error
	cfg.KeepaliveInterval, cfg.HandshakeTimeout, err = checkTimers(cfg.KeepaliveInterval, cfg.HandshakeTimeout)
	if err != nil {
		return nil, err
	}
	verify := func(peerCerts [][]byte) error {
		site, err := pki.PeerSite(peerCerts, cfg.Identity.Roots)
		if err != nil {
			return err
		}
		if cfg.AllowSite != nil && !cfg.AllowSite(site) {
			return &pki.AuthError{Err: pki.ErrWrongSite, Detail: fmt.Sprintf("site %q is not a peer of this gateway", site)}
		}
		return nil
	}
	opts := append(serverOptions(cfg.Identity, verify), dtls.WithListenConfig(listenConfig(cfg.Link)))
	addr := netip.AddrPortFrom(cfg.Link.Addr.Addr().Unmap(), cfg.Link.Addr.Port())
	ln, err := dtls.ListenWithOptions(network(addr.Addr()), net.UDPAddrFromAddrPort(addr), opts...)
	if err != nil {
		return nil, fmt.Errorf("tunnel: listen on link %s: %w", cfg.Link.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{cfg: cfg, ln: ln, ctx: ctx, cancel: cancel, sessions: make(map[netip.AddrPort]*Session)}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Addr is the address the listener's socket is bound to.
func (l *Listener) Addr() netip.AddrPort {
	return addrPort(l.ln.Addr())
}

// Session returns the established session with the peer at remote, or nil.
func (l *Listener) Session(remote netip.AddrPort) *Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sessions[remote]
}

// Close stops accepting, aborts handshakes in progress, closes every
// session (each gets a Disconnect event) and waits for all of it.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	sessions := make([]*Session, 0, len(l.sessions))
	for _, s := range l.sessions {
		sessions = append(sessions, s)
	}
	l.mu.Unlock()

	l.cancel()
	err := l.ln.Close()
	for _, s := range sessions {
		s.Close()
	}
	l.wg.Wait()
	return err
}

func (l *Listener) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // closed: Accept fails only once the socket reader stopped
		}
		l.wg.Add(1)
		go l.serve(c.(*dtls.Conn))
	}
}

// serve runs one peer's handshake and, if it succeeds, its session.
func (l *Listener) serve(conn *dtls.Conn) {
	defer l.wg.Done()
	info := PathInfo{Link: l.cfg.Link.Name, Remote: addrPort(conn.RemoteAddr())}
	if err := handshake(l.ctx, conn, l.cfg.HandshakeTimeout); err != nil {
		if l.ctx.Err() != nil {
			return
		}
		if isAuthFailure(err) {
			l.emit(AuthFailure{Time: time.Now(), PathInfo: info, Reason: err})
		} else {
			l.emit(HandshakeFailure{Time: time.Now(), PathInfo: info, Reason: err})
		}
		return
	}
	site, err := peerSite(conn)
	if err != nil { // verify accepted this very certificate: cannot happen
		conn.Close()
		return
	}
	info.Site = site
	s := start(conn, info, l.cfg.KeepaliveInterval, l.cfg.OnFrame)

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		s.Close()
		return
	}
	l.sessions[info.Remote] = s
	l.mu.Unlock()

	l.emit(Connect{Time: time.Now(), PathInfo: info})
	<-s.Done()
	l.mu.Lock()
	if l.sessions[info.Remote] == s {
		delete(l.sessions, info.Remote)
	}
	l.mu.Unlock()
	l.emit(Disconnect{Time: time.Now(), PathInfo: info, Reason: s.Err()})
}

// addrPort is a UDP address as netip.AddrPort, IPv4 as 4 bytes.
func addrPort(a net.Addr) netip.AddrPort {
	ap := a.(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// peerSite names the site of an authenticated connection.
func peerSite(conn *dtls.Conn) (string, error) {
	state, ok := conn.ConnectionState()
	if !ok || len(state.PeerCertificates) == 0 {
		return "", errors.New("tunnel: no peer certificate")
	}
	leaf, err := x509.ParseCertificate(state.PeerCertificates[0])
	if err != nil {
		return "", err
	}
	return pki.SiteOf(leaf)
}

func (l *Listener) emit(e Event) {
	if l.cfg.OnEvent != nil {
		l.cfg.OnEvent(e)
	}
}
