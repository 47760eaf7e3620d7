package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol/alert"

	"github.com/xwan-dev/xwan/userspace/pki"
	"github.com/xwan-dev/xwan/userspace/record"
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

// Frame is one frame received on a session.
type Frame struct {
	Session *Session
	Type    FrameType
	Payload []byte // valid until the BatchHandler returns
}

// BatchHandler receives the frames that one batch of datagrams carried
// (one recvmmsg), from the reader goroutine of the socket: several
// sessions' on a listener. Passing them together lets the receiver write
// them on with one system call (the tunnel device's GRO coalesces them).
// Keepalives are not passed on.
type BatchHandler func(frames []Frame)

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

	// OnFrame gets the frames one at a time, unless OnFrames is set.
	OnFrame FrameHandler
	// OnFrames gets the frames of each batch the socket reader received,
	// at once (see BatchHandler).
	OnFrames BatchHandler

	// RekeyInterval: how often the client side runs a new handshake to
	// replace the keys. 0 means DefaultRekeyInterval.
	RekeyInterval time.Duration
	// RekeyRecords: how many records one key may carry (sent, or received
	// from the peer) before the client side rekeys. 0 means
	// DefaultRekeyRecords; it is capped well below the AES-GCM limit.
	RekeyRecords uint64
	// Counters, if set, counts drops and rekeys (shared by a gateway's
	// sessions).
	Counters *Counters

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
	if err != nil {
		return err
	}
	c.RekeyInterval, c.RekeyRecords, err = checkRekey(c.RekeyInterval, c.RekeyRecords)
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

// Rekeying defaults and limits.
const (
	DefaultRekeyInterval = 10 * time.Minute
	MinRekeyInterval     = time.Second
	// DefaultRekeyRecords is a third of the AES-GCM limit of 2^24.5
	// records per key (record.GCMRecordLimit): a session rekeys long
	// before its Sealer would refuse to send.
	DefaultRekeyRecords = 1 << 23
	// MaxRekeyRecords leaves room for the rekey handshake to finish.
	MaxRekeyRecords = record.GCMRecordLimit / 2
	// prevKeyGrace is how long replaced keys still open late records.
	prevKeyGrace = 5 * time.Second
)

func checkRekey(interval time.Duration, records uint64) (time.Duration, uint64, error) {
	if interval == 0 {
		interval = DefaultRekeyInterval
	}
	if interval < MinRekeyInterval {
		return 0, 0, fmt.Errorf("tunnel: rekey interval %v: must be at least %v", interval, MinRekeyInterval)
	}
	if records == 0 {
		records = DefaultRekeyRecords
	}
	if records > MaxRekeyRecords {
		return 0, 0, fmt.Errorf("tunnel: rekey after %d records: at most %d", records, MaxRekeyRecords)
	}
	return interval, records, nil
}

// settings are what a session needs after the handshake.
type settings struct {
	identity         Identity
	verify           verifyPeer // for the client's rekey handshakes
	keepalive        time.Duration
	handshakeTimeout time.Duration
	rekeyInterval    time.Duration
	rekeyRecords     uint64
}

var errNoState = errors.New("tunnel: no DTLS state after the handshake")

// ErrKeyExhausted ends a session whose key reached its record limit before
// a rekey replaced it.
var ErrKeyExhausted = errors.New("tunnel: key used up before a rekey replaced it")

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
	set := settings{
		identity: cfg.Identity, verify: verify, keepalive: cfg.KeepaliveInterval, handshakeTimeout: cfg.HandshakeTimeout,
		rekeyInterval: cfg.RekeyInterval, rekeyRecords: cfg.RekeyRecords,
	}
	info := PathInfo{Site: cfg.Site, Link: cfg.Link.Name, Remote: cfg.Remote}
	ep := newSock(pc, cfg.Counters, cfg.OnFrame, cfg.OnFrames)
	p := ep.addPeer(cfg.Remote)
	fail := func(err error) (*Session, error) {
		ep.close()
		return nil, fmt.Errorf("tunnel: handshake with %s at %s: %w", cfg.Site, cfg.Remote, err)
	}
	if cfg.Role == RoleClient {
		hs := newHandshake(ep, cfg.Remote)
		p.hs.Store(hs)
		ep.start()
		if err := hs.run(ctx, RoleClient, cfg.Identity, verify, cfg.HandshakeTimeout); err != nil {
			return fail(err)
		}
		gen, err := newKeyGen(hs, set.rekeyRecords)
		if err != nil {
			hs.end()
			return fail(err)
		}
		// The client finishes last: its pion has nothing more to do.
		p.hs.CompareAndSwap(hs, nil)
		go hs.end()
		gen.hs = nil
		return runSession(ep, p, info, RoleClient, set, gen, true), nil
	}

	// Server: the handshake starts with the peer's ClientHello; later
	// ClientHellos are the client's rekeys (or its restart).
	type outcome struct {
		s   *Session
		err error
	}
	first := make(chan outcome, 1)
	var mu sync.Mutex // guards sess and gaveUp
	var sess *Session
	gaveUp := false
	ep.hello = func(hp *peer, remote netip.AddrPort, rec []byte) {
		if hp != p { // not the expected peer
			ep.counters.UnknownPeer.Add(1)
			return
		}
		hs := newHandshake(ep, remote)
		if old := p.hs.Swap(hs); old != nil {
			go old.end()
		}
		hs.deliver(rec)
		mu.Lock()
		existing := sess
		mu.Unlock()
		go func() {
			runCtx := ctx
			if existing != nil {
				runCtx = existing.context()
			}
			err := hs.run(runCtx, RoleServer, cfg.Identity, verify, cfg.HandshakeTimeout)
			var gen *keyGen
			if err == nil {
				gen, err = newKeyGen(hs, set.rekeyRecords)
			}
			if err != nil {
				p.hs.CompareAndSwap(hs, nil)
				hs.end()
				if existing != nil {
					ep.counters.RekeyFailures.Add(1)
					return
				}
				select {
				case first <- outcome{err: err}:
				default:
				}
				return
			}
			if existing != nil {
				if !existing.installNext(gen) {
					hs.end() // the socket closes with the session
				}
				return
			}
			mu.Lock()
			if gaveUp || sess != nil {
				mu.Unlock()
				hs.end()
				return
			}
			sess = runSession(ep, p, info, RoleServer, set, gen, true)
			mu.Unlock()
			first <- outcome{s: sess}
		}()
	}
	ep.start()
	timeout := time.NewTimer(cfg.HandshakeTimeout)
	defer timeout.Stop()
	select {
	case o := <-first:
		if o.err != nil {
			return fail(o.err)
		}
		return o.s, nil
	case <-ctx.Done():
	case <-timeout.C:
	}
	mu.Lock()
	gaveUp = true
	s := sess
	mu.Unlock()
	if s != nil { // it made it just now
		return s, nil
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	return fail(context.DeadlineExceeded)
}

// handshakeWithin runs conn's handshake within timeout and closes conn if
// it fails. A refusal by the peer is turned into ErrRejectedByPeer.
func handshakeWithin(ctx context.Context, conn *dtls.Conn, timeout time.Duration) error {
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

// keyGen is one generation of a session's keys: the record layer that
// replaced pion after one handshake.
type keyGen struct {
	keys   record.Keys
	sealer *record.Sealer
	opener *record.Opener // reader goroutine only
	// hs is the handshake the keys came from while its pion may still be
	// needed (a server retransmits its last flight until the client shows
	// it has the keys); ended on the first record that opens with them.
	hs        *handshake
	confirmed bool          // reader goroutine only
	received  atomic.Uint64 // records opened
	since     atomic.Int64  // unix ns when installed
	until     atomic.Int64  // as prev: unix ns after which it is dropped
}

func newKeyGen(hs *handshake, rekeyRecords uint64) (*keyGen, error) {
	// The Sealer refuses well after the rekey point (twice as far, at least
	// a million records more), never past the AES-GCM limit: time enough
	// for a rekey handshake.
	keys, sealer, opener, err := hs.takeOver(min(max(2*rekeyRecords, rekeyRecords+1<<20), record.GCMRecordLimit))
	if err != nil {
		return nil, err
	}
	g := &keyGen{keys: keys, sealer: sealer, opener: opener, hs: hs}
	g.since.Store(time.Now().UnixNano())
	return g, nil
}

// Session is one established DTLS session. Its record layer is this
// package's (userspace/record), rebuilt from pion's state after each
// handshake; pion only runs handshakes.
type Session struct {
	ep     *sock
	p      *peer
	info   PathInfo
	role   Role
	set    settings
	ownsEP bool // the socket is this session's (dialed), not a listener's

	sealer atomic.Pointer[record.Sealer]
	// Receiving keys. cur opens the peer's records; next (server side) is
	// a rekey's keys the client has not used yet; prev the keys a rekey
	// replaced, kept for late records for prevKeyGrace.
	cur, next, prev atomic.Pointer[keyGen]
	backup          []byte // reader goroutine: a record kept while trying keys

	lastRecv   atomic.Int64 // unix nanoseconds of the last record from the peer
	rekeying   atomic.Bool
	rekeyAfter atomic.Int64 // unix ns before which no rekey starts (backoff)
	gens       atomic.Uint64
	kicked     atomic.Bool   // a key reached RekeyRecords: the keepalive goroutine was told
	kick       chan struct{} // wakes the keepalive goroutine for a rekey
	// stash (reader goroutine, server side) keeps records that no key
	// opened while a rekey handshake had finished but its keys were not
	// installed yet: the client may switch a moment before this side has
	// taken the keys over. They are tried again once the keys are there.
	stash [][]byte
	ended atomic.Bool

	ctx     context.Context // done when the session ends: bounds its rekeys
	cancel  context.CancelFunc
	endOnce sync.Once
	err     error // why it ended; written once, before done is closed
	done    chan struct{}
}

// maxRecord bounds one record's plaintext.
const maxRecord = record.MaxPlaintext

func runSession(ep *sock, p *peer, info PathInfo, role Role, set settings, gen *keyGen, ownsEP bool) *Session {
	s := &Session{ep: ep, p: p, info: info, role: role, set: set, ownsEP: ownsEP, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if gen.hs != nil {
		gen.hs.installed.Store(true)
	}
	s.cur.Store(gen)
	s.sealer.Store(gen.sealer)
	s.gens.Store(1)
	s.lastRecv.Store(time.Now().UnixNano())
	p.sess.Store(s)
	go s.keepAlive()
	return s
}

// Info names the session's path.
func (s *Session) Info() PathInfo { return s.info }

// SessionStats describe a session's record layer.
type SessionStats struct {
	Keys   uint64 // key generations used: 1, plus one per rekey
	Sealed uint64 // records sealed under the current keys (this package's Sealer)
	Opened uint64 // records from the peer opened under the current keys
}

// Stats returns the session's record layer figures.
func (s *Session) Stats() SessionStats {
	g := s.cur.Load()
	return SessionStats{Keys: s.gens.Load(), Sealed: g.sealer.Sealed(), Opened: g.received.Load()}
}

// context is done when the session ends.
func (s *Session) context() context.Context { return s.ctx }

// sendPool holds the buffers of single sends.
var sendPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 2048)
	return &b
}}

// Send sends payload as one frame of type t, in one record. For many
// frames, a Batch is cheaper.
func (s *Session) Send(t FrameType, payload []byte) error {
	if !t.valid() {
		return fmt.Errorf("%w: %d", ErrUnknownFrameType, uint8(t))
	}
	return s.sendRecord(record.ApplicationData, byte(t), payload)
}

// sendRecord seals one record (first byte, then payload) and sends it.
func (s *Session) sendRecord(ct record.ContentType, first byte, payload []byte) error {
	if s.ended.Load() {
		return fmt.Errorf("tunnel: send to %s at %s: %w", s.info.Site, s.info.Remote, ErrClosed)
	}
	n := 1 + len(payload)
	if n > maxRecord {
		return fmt.Errorf("tunnel: frame of %d bytes: %w", n, record.ErrTooLarge)
	}
	bp := sendPool.Get().(*[]byte)
	defer sendPool.Put(bp)
	need := record.Overhead + n + record.ScratchLen
	if cap(*bp) < need {
		*bp = make([]byte, 0, need)
	}
	buf := (*bp)[:need]
	buf[record.PayloadOffset] = first
	copy(buf[record.PayloadOffset+1:], payload)
	sealer := s.sealer.Load()
	rec, err := sealer.SealInPlace(buf, ct, n)
	if err != nil {
		return s.sealError(err)
	}
	s.sealed(sealer)
	if err := s.ep.conn.write([]wireMsg{{buf: rec, addr: s.p.remote}}); err != nil {
		return fmt.Errorf("tunnel: send to %s at %s: %w", s.info.Site, s.info.Remote, err)
	}
	return nil
}

// sealed checks the record count of the key that sealed a record.
func (s *Session) sealed(sealer *record.Sealer) {
	if s.role == RoleClient && sealer.Sealed() >= s.set.rekeyRecords {
		s.kickRekey()
	}
}

// kickRekey asks the keepalive goroutine for a rekey now (client side).
func (s *Session) kickRekey() {
	if s.kicked.Load() {
		return
	}
	s.kicked.Store(true)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Session) sealError(err error) error {
	if errors.Is(err, record.ErrExhausted) {
		s.ep.counters.KeyExhausted.Add(1)
		go s.end(ErrKeyExhausted)
	}
	return fmt.Errorf("tunnel: send to %s at %s: %w", s.info.Site, s.info.Remote, err)
}

// Close ends the session: the peer gets a close_notify alert, sealed by
// this package's record layer (pion sends nothing after the hand-over),
// and a dialed session's socket is closed. A frame being handed to OnFrame
// when Close is called may still finish after Close returns.
func (s *Session) Close() error {
	s.end(ErrClosed)
	return nil
}

// Done is closed when the session has ended and its socket is closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (nil while it runs): ErrClosed,
// ErrPeerSilent, ErrPeerClosed or ErrKeyExhausted.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Alert levels and the close_notify description (RFC 5246 §7.2).
const (
	alertWarning     = 1
	alertFatal       = 2
	alertCloseNotify = 0
)

func (s *Session) end(reason error) {
	s.endOnce.Do(func() {
		s.err = reason
		if reason != ErrPeerClosed {
			_ = s.sendRecord(record.Alert, alertWarning, []byte{alertCloseNotify})
		}
		s.ended.Store(true)
		s.cancel()
		// On a listener, a handshake still running with the peer is most
		// likely the peer back after a restart: it goes on, and becomes
		// the peer's next session (Listener.serve).
		pending := s.p.hs.Load()
		keepPeer := !s.ownsEP && pending != nil && !pending.finished.Load()
		if !keepPeer {
			if hs := s.p.hs.Swap(nil); hs != nil {
				hs.end()
			}
		}
		for _, g := range []*keyGen{s.cur.Load(), s.next.Load(), s.prev.Load()} {
			if g != nil && g.hs != nil && g.hs != pending {
				g.hs.end()
			}
		}
		if keepPeer {
			s.p.sess.CompareAndSwap(s, nil)
		} else {
			s.ep.removePeer(s.p)
		}
		if s.ownsEP {
			// The socket is closed before done, so that a new session can
			// bind the same address as soon as done is closed.
			_ = s.ep.close()
		}
		close(s.done)
	})
}

// received opens an application data record (reader goroutine) and adds
// its frame.
func (s *Session) received(h record.Header, rec []byte, now int64, frames []Frame) []Frame {
	// While a rekey handshake this side serves has not given its keys yet,
	// a record that no key opens may be the client's first under them
	// (under the old keys, its low sequence number even looks replayed):
	// it is kept (before the failed attempts clear it) and tried again.
	var keep []byte
	if s.role == RoleServer && len(s.stash) < maxEarly {
		if hs := s.p.hs.Load(); hs != nil && !hs.installed.Load() {
			keep = append([]byte(nil), rec...)
		}
	}
	pt, err := s.open(h, rec)
	if err != nil {
		if keep != nil && (errors.Is(err, record.ErrAuth) || errors.Is(err, record.ErrReplayed)) {
			s.stash = append(s.stash, keep)
			return frames
		}
		s.ep.counters.countOpenError(err)
		return frames
	}
	s.lastRecv.Store(now)
	t, payload, err := Decode(pt)
	if err != nil {
		s.ep.counters.BadFrame.Add(1) // a frame type from a newer peer
		return frames
	}
	if t == FrameControl && len(payload) == 0 {
		return frames // keepalive
	}
	return append(frames, Frame{Session: s, Type: t, Payload: payload})
}

// alert handles an encrypted alert (reader goroutine). It returns false if
// no key of the session opens it; with quiet, that is not counted (it may
// be the running handshake's).
func (s *Session) alert(h record.Header, rec []byte, quiet bool) bool {
	pt, err := s.open(h, rec)
	if err != nil {
		if !quiet || !errors.Is(err, record.ErrAuth) {
			s.ep.counters.countOpenError(err)
		}
		return false
	}
	s.lastRecv.Store(time.Now().UnixNano())
	if len(pt) == 2 && (pt[0] == alertFatal || pt[1] == alertCloseNotify) {
		s.end(ErrPeerClosed)
	}
	return true
}

// open authenticates and decrypts one record in place with the session's
// keys (reader goroutine). With one key generation, that is one Open;
// around a rekey, each live generation is tried, newest first, on a copy.
func (s *Session) open(h record.Header, rec []byte) ([]byte, error) {
	cur := s.cur.Load()
	next, prev := s.next.Load(), s.prev.Load()
	if next == nil && prev == nil {
		pt, err := cur.opener.Open(h, rec)
		if err == nil {
			s.opened(cur)
		}
		return pt, err
	}
	gens := [3]*keyGen{next, cur, prev}
	if cap(s.backup) < len(rec) {
		s.backup = make([]byte, len(rec), max(len(rec), 2048))
	}
	backup := s.backup[:len(rec)]
	copy(backup, rec)
	var replayed, forged, other error
	tried := false
	for i, g := range gens {
		if g == nil || (i > 0 && g == gens[i-1]) || (i == 2 && g == gens[0]) {
			continue
		}
		if err := g.opener.Check(h); err != nil {
			if errors.Is(err, record.ErrReplayed) {
				replayed = err
			} else {
				other = err
			}
			continue
		}
		if tried {
			copy(rec, backup)
		}
		tried = true
		pt, err := g.opener.Open(h, rec)
		if err == nil {
			if g == next {
				s.promote(next)
			}
			s.opened(g)
			return pt, nil
		}
		forged = err
	}
	switch {
	case replayed != nil:
		return nil, replayed
	case forged != nil:
		return nil, forged
	}
	return nil, other
}

// opened notes a record that opened with g (reader goroutine).
func (s *Session) opened(g *keyGen) {
	if g.received.Add(1) >= s.set.rekeyRecords && s.role == RoleClient {
		s.kickRekey()
	}
	if !g.confirmed {
		g.confirmed = true
		if g.hs != nil {
			// The peer has the keys: its handshake is over, ours may end.
			hs := g.hs
			s.p.hs.CompareAndSwap(hs, nil)
			go hs.end()
		}
	}
}

// installNext (server side, after a rekey handshake) keeps the new keys
// for receiving: they take over sending when the client's first record
// under them arrives (promote), since the client may not have finished
// its handshake yet. It returns false if the session has ended.
func (s *Session) installNext(g *keyGen) bool {
	if s.ended.Load() {
		return false
	}
	if old := s.next.Swap(g); old != nil && old.hs != nil {
		go old.hs.end()
	}
	g.hs.installed.Store(true)
	return true
}

// promote makes a confirmed next generation current (reader goroutine).
func (s *Session) promote(g *keyGen) {
	now := time.Now().UnixNano()
	old := s.cur.Load()
	old.until.Store(now + int64(prevKeyGrace))
	s.prev.Store(old)
	g.since.Store(now)
	s.cur.Store(g)
	s.sealer.Store(g.sealer)
	s.next.CompareAndSwap(g, nil)
	s.gens.Add(1)
	s.ep.counters.Rekeys.Add(1)
}

// install (client side, after a rekey handshake) switches to the new keys
// at once: the server finished first and opens them already.
func (s *Session) install(g *keyGen) {
	now := time.Now().UnixNano()
	old := s.cur.Load()
	old.until.Store(now + int64(prevKeyGrace))
	s.prev.Store(old)
	g.since.Store(now)
	s.cur.Store(g)
	s.sealer.Store(g.sealer)
	s.gens.Add(1)
	s.kicked.Store(false)
	s.ep.counters.Rekeys.Add(1)
	// Show the server the new keys (it switches on the first record).
	_ = s.Send(FrameControl, nil)
}

// rekeyDue tells whether the client side should replace the keys.
func (s *Session) rekeyDue(now time.Time) bool {
	if s.role != RoleClient || s.rekeying.Load() || now.UnixNano() < s.rekeyAfter.Load() {
		return false
	}
	cur := s.cur.Load()
	return now.Sub(time.Unix(0, cur.since.Load())) >= s.set.rekeyInterval ||
		cur.sealer.Sealed() >= s.set.rekeyRecords || cur.received.Load() >= s.set.rekeyRecords
}

// Rekey runs a new handshake now (client side; a server session returns
// an error) and switches to its keys. The old keys keep working until then
// and a little after, so no traffic is lost.
func (s *Session) Rekey() error {
	if s.role != RoleClient {
		return errors.New("tunnel: only the client side of a session starts a rekey")
	}
	if !s.rekeying.CompareAndSwap(false, true) {
		return errors.New("tunnel: a rekey is running")
	}
	defer s.rekeying.Store(false)
	hs := newHandshake(s.ep, s.p.remote)
	if old := s.p.hs.Swap(hs); old != nil {
		go old.end()
	}
	err := hs.run(s.context(), RoleClient, s.set.identity, s.set.verify, s.set.handshakeTimeout)
	var g *keyGen
	if err == nil {
		g, err = newKeyGen(hs, s.set.rekeyRecords)
	}
	s.p.hs.CompareAndSwap(hs, nil)
	go hs.end()
	if err != nil {
		s.ep.counters.RekeyFailures.Add(1)
		s.rekeyAfter.Store(time.Now().Add(s.set.keepalive).UnixNano())
		return fmt.Errorf("tunnel: rekey with %s at %s: %w", s.info.Site, s.info.Remote, err)
	}
	g.hs = nil
	if s.ended.Load() {
		return ErrClosed
	}
	s.install(g)
	return nil
}

func (s *Session) keepAlive() {
	tick := time.NewTicker(s.set.keepalive)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.kick:
			if s.rekeyDue(time.Now()) {
				go func() { _ = s.Rekey() }()
			}
		case now := <-tick.C:
			if now.Sub(time.Unix(0, s.lastRecv.Load())) >= SilentIntervals*s.set.keepalive {
				s.end(ErrPeerSilent)
				return
			}
			// A failed send is not fatal by itself: if the path is
			// broken, the peer's keepalives stop too.
			_ = s.Send(FrameControl, nil)
			if prev := s.prev.Load(); prev != nil && now.UnixNano() > prev.until.Load() {
				s.prev.CompareAndSwap(prev, nil)
			}
			if next := s.next.Load(); next != nil && now.Sub(time.Unix(0, next.since.Load())) > 2*s.set.handshakeTimeout+SilentIntervals*s.set.keepalive {
				// The client never used these keys: its handshake failed.
				if s.next.CompareAndSwap(next, nil) && next.hs != nil {
					go next.hs.end()
				}
			}
			if s.rekeyDue(now) {
				go func() { _ = s.Rekey() }()
			}
		}
	}
}
