package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol/alert"

	"github.com/xwan-dev/xwan/userspace/pki"
)

// Timer defaults and limits.
const (
	DefaultKeepaliveInterval = 10 * time.Second
	// MaxKeepaliveInterval is exclusive: common NATs forget an idle UDP
	// mapping after 30 s, some after less.
	MaxKeepaliveInterval    = 25 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	// SilentIntervals keepalive intervals without a record from the peer
	// end a session with ErrPeerSilent.
	SilentIntervals = 3
)

// Why a session ended (Session.Err, Disconnect.Reason) or did not start.
var (
	ErrClosed         = errors.New("tunnel: session closed")
	ErrPeerSilent     = fmt.Errorf("tunnel: no record from the peer for %d keepalive intervals", SilentIntervals)
	ErrPeerClosed     = errors.New("tunnel: session closed by the peer")
	ErrRejectedByPeer = errors.New("tunnel: the peer refused this site's certificate")
)

// Identity is what a gateway proves and trusts.
type Identity struct {
	Certificate tls.Certificate // this site's certificate and key (pki.LoadSiteKeyPair)
	Roots       *x509.CertPool  // the mesh CA (pki.LoadCAPool)
}

// Role is the side a session takes in the DTLS handshake.
type Role uint8

// Roles.
const (
	RoleClient Role = iota
	RoleServer
)

// FrameHandler receives the frames of a session, one at a time, from the
// session's reader goroutine. payload is only valid until it returns.
// Keepalives are not passed on.
type FrameHandler func(s *Session, t FrameType, payload []byte)

// SessionConfig describes one path's session.
type SessionConfig struct {
	Identity Identity
	Link     Link
	Remote   netip.AddrPort
	Site     string // the site the peer must prove to be
	Role     Role

	// KeepaliveInterval: how often a keepalive is sent, and the unit of
	// dead-peer detection. 0 means DefaultKeepaliveInterval; it must be
	// under MaxKeepaliveInterval. Both ends should use the same value: a
	// peer that sends less often than every SilentIntervals of ours looks
	// dead.
	KeepaliveInterval time.Duration
	// HandshakeTimeout bounds one handshake. 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	OnFrame FrameHandler

	// Socket, if set, opens the datagram socket instead of binding a UDP
	// socket to Link; the session owns and closes what it returns.
	Socket func() (net.PacketConn, error)
}

func (c *SessionConfig) check() error {
	if err := c.Identity.check(); err != nil {
		return err
	}
	if err := pki.ValidateSiteName(c.Site); err != nil {
		return fmt.Errorf("tunnel: expected site: %w", err)
	}
	if !c.Remote.IsValid() {
		return errors.New("tunnel: no remote endpoint")
	}
	if err := c.Link.check(c.Socket == nil); err != nil {
		return err
	}
	if c.Role != RoleClient && c.Role != RoleServer {
		return fmt.Errorf("tunnel: invalid role %d", c.Role)
	}
	var err error
	c.KeepaliveInterval, c.HandshakeTimeout, err = checkTimers(c.KeepaliveInterval, c.HandshakeTimeout)
	return err
}

func (id Identity) check() error {
	if len(id.Certificate.Certificate) == 0 || id.Certificate.PrivateKey == nil {
		return errors.New("tunnel: no site certificate and key")
	}
	if id.Roots == nil {
		return errors.New("tunnel: no mesh CA")
	}
	return nil
}

// checkTimers applies the defaults and the limits.
func checkTimers(keepalive, handshake time.Duration) (time.Duration, time.Duration, error) {
	if keepalive == 0 {
		keepalive = DefaultKeepaliveInterval
	}
	if keepalive < 0 || keepalive >= MaxKeepaliveInterval {
		return 0, 0, fmt.Errorf("tunnel: keepalive interval %v: must be above 0 and under %v", keepalive, MaxKeepaliveInterval)
	}
	if handshake == 0 {
		handshake = DefaultHandshakeTimeout
	}
	if handshake < 0 {
		return 0, 0, fmt.Errorf("tunnel: negative handshake timeout %v", handshake)
	}
	return keepalive, handshake, nil
}

// verifyPeer decides whether the certificate chain a peer presented (leaf
// first, possibly empty) is the one it must present.
type verifyPeer func(peerCerts [][]byte) error

// dtlsOptions are the settings common to both roles. verify runs as pion's
// VerifyConnection hook, which pion calls in both roles once the peer has
// proved it holds the key of the certificate it sent, or sent none. It
// replaces pion's own chain check: pki.VerifySite does all of it (chain to
// the mesh CA, validity, key usage, site name) and says which part failed.
func dtlsOptions(id Identity, verify verifyPeer) []dtls.Option {
	return []dtls.Option{
		dtls.WithCertificates(id.Certificate),
		dtls.WithCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithVerifyConnection(func(state *dtls.State) error { return verify(state.PeerCertificates) }),
		// pion v3.1.15 speaks DTLS 1.2 only; nothing to pin there.
	}
}

func clientOptions(id Identity, verify verifyPeer) []dtls.ClientOption {
	var opts []dtls.ClientOption
	for _, o := range dtlsOptions(id, verify) {
		opts = append(opts, o)
	}
	// Not insecure: verify checks the server's chain. Without this, pion
	// would first run its own check and fail with a bare x509 error.
	return append(opts, dtls.WithInsecureSkipVerify(true))
}

func serverOptions(id Identity, verify verifyPeer) []dtls.ServerOption {
	var opts []dtls.ServerOption
	for _, o := range dtlsOptions(id, verify) {
		opts = append(opts, o)
	}
	// Ask for a client certificate and let verify refuse a client that
	// sends none (pki.ErrNoCertificate): with RequireAnyClientCert pion
	// would refuse it first, with an error that does not say it is about
	// authentication.
	return append(opts, dtls.WithClientAuth(dtls.RequestClientCert))
}

// NewSession opens the path's socket and runs the handshake in cfg.Role.
// An authentication failure is reported as an error wrapping a
// *pki.AuthError (this side refused the peer) or ErrRejectedByPeer.
func NewSession(ctx context.Context, cfg SessionConfig) (*Session, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	open := cfg.Socket
	if open == nil {
		open = func() (net.PacketConn, error) { return listenUDP(cfg.Link) }
	}
	pc, err := open()
	if err != nil {
		return nil, err
	}
	verify := func(peerCerts [][]byte) error {
		return pki.VerifySite(peerCerts, cfg.Identity.Roots, cfg.Site)
	}
	remote := net.UDPAddrFromAddrPort(cfg.Remote)
	var conn *dtls.Conn
	if cfg.Role == RoleServer {
		conn, err = dtls.ServerWithOptions(pc, remote, serverOptions(cfg.Identity, verify)...)
	} else {
		conn, err = dtls.ClientWithOptions(pc, remote, clientOptions(cfg.Identity, verify)...)
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	if err := handshake(ctx, conn, cfg.HandshakeTimeout); err != nil {
		return nil, fmt.Errorf("tunnel: handshake with %s at %s: %w", cfg.Site, cfg.Remote, err)
	}
	info := PathInfo{Site: cfg.Site, Link: cfg.Link.Name, Remote: cfg.Remote}
	return start(conn, info, cfg.KeepaliveInterval, cfg.OnFrame), nil
}

// handshake runs conn's handshake within timeout and closes conn if it
// fails. A refusal by the peer is turned into ErrRejectedByPeer.
func handshake(ctx context.Context, conn *dtls.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := conn.HandshakeContext(ctx)
	if err == nil {
		return nil
	}
	conn.Close()
	if a, ok := receivedAlert(err); ok && isCertificateAlert(a.Description) {
		return fmt.Errorf("%w: it sent %s", ErrRejectedByPeer, a)
	}
	return err
}

// receivedAlert finds the alert the peer sent in a pion error. pion reports
// a received alert as an unexported type that embeds *alert.Alert, so the
// promoted methods are the way in; it never uses that type for alerts it
// sends itself.
func receivedAlert(err error) (*alert.Alert, bool) {
	var received interface {
		error
		Marshal() ([]byte, error)
		IsFatalOrCloseNotify() bool
	}
	if !errors.As(err, &received) {
		return nil, false
	}
	raw, err := received.Marshal()
	a := &alert.Alert{}
	if err != nil || a.Unmarshal(raw) != nil {
		return nil, false
	}
	return a, true
}

func isCertificateAlert(d alert.Description) bool {
	switch d {
	case alert.BadCertificate, alert.UnsupportedCertificate, alert.CertificateRevoked,
		alert.CertificateExpired, alert.CertificateUnknown, alert.UnknownCA, alert.AccessDenied,
		alert.NoCertificate:
		return true
	}
	return false
}

// isAuthFailure tells a handshake error caused by a refused certificate
// from any other.
func isAuthFailure(err error) bool {
	var refused *pki.AuthError
	return errors.As(err, &refused) || errors.Is(err, ErrRejectedByPeer)
}

// Session is one established DTLS session.
type Session struct {
	conn      *dtls.Conn
	info      PathInfo
	onFrame   FrameHandler
	keepalive time.Duration
	lastRecv  atomic.Int64 // unix nanoseconds of the last record from the peer

	endOnce sync.Once
	err     error // why it ended; written once, before done is closed
	done    chan struct{}
}

// maxRecord bounds one record's plaintext: pion reads each datagram into
// 8 KiB.
const maxRecord = 8192

func start(conn *dtls.Conn, info PathInfo, keepalive time.Duration, onFrame FrameHandler) *Session {
	s := &Session{
		conn:      conn,
		info:      info,
		onFrame:   onFrame,
		keepalive: keepalive,
		done:      make(chan struct{}),
	}
	s.lastRecv.Store(time.Now().UnixNano())
	go s.read()
	go s.keepAlive()
	return s
}

// Info names the session's path.
func (s *Session) Info() PathInfo { return s.info }

// Send sends payload as one frame of type t, in one record.
func (s *Session) Send(t FrameType, payload []byte) error {
	frame, err := Encode(t, payload)
	if err != nil {
		return err
	}
	if _, err := s.conn.Write(frame); err != nil {
		return fmt.Errorf("tunnel: send to %s at %s: %w", s.info.Site, s.info.Remote, err)
	}
	return nil
}

// Close ends the session: the peer gets a close_notify alert, the socket
// is closed. A frame being handed to OnFrame when Close is called may still
// finish after Close returns.
func (s *Session) Close() error {
	s.end(ErrClosed)
	return nil
}

// Done is closed when the session has ended and its socket is closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (nil while it runs): ErrClosed,
// ErrPeerSilent or ErrPeerClosed.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *Session) end(reason error) {
	s.endOnce.Do(func() {
		s.err = reason
		// pion sends close_notify if the session is still up, and closes
		// the socket before returning, so that a new session can bind the
		// same address as soon as done is closed.
		_ = s.conn.Close()
		close(s.done)
	})
}

func (s *Session) read() {
	buf := make([]byte, maxRecord)
	for {
		n, err := s.conn.Read(buf)
		if errors.Is(err, io.EOF) {
			// pion ends its reader after a close_notify or fatal alert
			// from the peer, or when the socket is closed under it, which
			// only happens here after a local Close (ended already).
			s.end(ErrPeerClosed)
			return
		}
		if err != nil {
			continue // a warning alert, or a transient socket error
		}
		s.lastRecv.Store(time.Now().UnixNano())
		t, payload, err := Decode(buf[:n])
		if err != nil {
			continue // a frame type from a newer peer: not ours to handle
		}
		if t == FrameControl && len(payload) == 0 {
			continue // keepalive
		}
		if s.onFrame != nil {
			s.onFrame(s, t, payload)
		}
	}
}

func (s *Session) keepAlive() {
	tick := time.NewTicker(s.keepalive)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-tick.C:
			if now.Sub(time.Unix(0, s.lastRecv.Load())) >= SilentIntervals*s.keepalive {
				s.end(ErrPeerSilent)
				return
			}
			// A failed send is not fatal by itself: if the path is
			// broken, the peer's keepalives stop too.
			_ = s.Send(FrameControl, nil)
		}
	}
}
