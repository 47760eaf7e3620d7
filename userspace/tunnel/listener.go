package tunnel

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

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
	// RekeyRecords bounds the records of one key as in SessionConfig. The
	// client side of each session starts the rekeys.
	RekeyRecords uint64
	OnFrame      FrameHandler // as in SessionConfig
	OnFrames     BatchHandler // as in SessionConfig
	Counters     *Counters    // as in SessionConfig
	// OnEvent is called from the goroutine serving the peer the event is
	// about; it must not block long.
	OnEvent func(Event)
}

// maxPendingHandshakes bounds the handshakes a listener runs at once with
// peers that have no session yet; more ClientHellos are dropped (and
// counted) until some finish or time out.
const maxPendingHandshakes = 64

// Listener accepts sessions from many peers on one UDP socket.
//
// The socket belongs to this package: one reader (see endpoint) reads it
// in batches and demultiplexes by remote address. A ClientHello from an
// address without a session starts a handshake (pion, as a server, with
// its HelloVerifyRequest cookie exchange); once it completes, the session
// is the peer's and its records are opened by the session's record layer.
// A ClientHello from an address with a session is a rekey by that client,
// or the client restarted: either way the new handshake, if it
// authenticates the same site, gives the existing session new keys (no
// Disconnect, no Connect); the keys replace the old ones when the client
// first uses them.
type Listener struct {
	cfg ListenerConfig
	ep  *sock
	set settings
	// ctx bounds the handshakes in progress; cancel aborts them on Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // one goroutine per handshake and session

	mu     sync.Mutex
	closed bool
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
	var rekeyInterval time.Duration
	rekeyInterval, cfg.RekeyRecords, err = checkRekey(0, cfg.RekeyRecords)
	if err != nil {
		return nil, err
	}
	pc, err := listenUDP(cfg.Link)
	if err != nil {
		return nil, fmt.Errorf("tunnel: listen on link %s: %w", cfg.Link.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		cfg: cfg, ctx: ctx, cancel: cancel,
		ep: newSock(pc, cfg.Counters, cfg.OnFrame, cfg.OnFrames),
		set: settings{
			identity: cfg.Identity, keepalive: cfg.KeepaliveInterval, handshakeTimeout: cfg.HandshakeTimeout,
			rekeyInterval: rekeyInterval, rekeyRecords: cfg.RekeyRecords,
		},
	}
	l.ep.hello = l.hello
	l.ep.start()
	return l, nil
}

// Addr is the address the listener's socket is bound to.
func (l *Listener) Addr() netip.AddrPort {
	return l.ep.conn.localAddr()
}

// Session returns the established session with the peer at remote, or nil.
func (l *Listener) Session(remote netip.AddrPort) *Session {
	if p := l.ep.lookup(remote); p != nil {
		return p.sess.Load()
	}
	return nil
}

// Close stops accepting, aborts handshakes in progress, closes every
// session (each gets a Disconnect event) and waits for all of it.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	for _, s := range l.ep.sessions() {
		s.Close()
	}
	err := l.ep.close()
	<-l.ep.readerDone
	l.wg.Wait()
	return err
}

// hello starts a server handshake (reader goroutine): p is the peer at
// remote, nil for a new address.
func (l *Listener) hello(p *peer, remote netip.AddrPort, rec []byte) {
	if l.ctx.Err() != nil {
		return
	}
	fresh := p == nil
	if fresh {
		if l.ep.pending.Load() >= maxPendingHandshakes {
			l.ep.counters.HandshakesRefused.Add(1)
			return
		}
		if p = l.ep.addPeer(remote); p == nil {
			return
		}
	}
	hs := newHandshake(l.ep, remote)
	if old := p.hs.Swap(hs); old != nil {
		go old.end()
	}
	hs.deliver(rec)
	l.ep.pending.Add(1)
	l.wg.Add(1)
	go l.serve(p, hs)
}

// serve runs one handshake and, for a new peer, its session.
func (l *Listener) serve(p *peer, hs *handshake) {
	defer l.wg.Done()
	info := PathInfo{Link: l.cfg.Link.Name, Remote: p.remote}
	existing := p.sess.Load()
	verify := func(peerCerts [][]byte) error {
		site, err := pki.PeerSite(peerCerts, l.cfg.Identity.Roots)
		if err != nil {
			return err
		}
		if l.cfg.AllowSite != nil && !l.cfg.AllowSite(site) {
			return &pki.AuthError{Err: pki.ErrWrongSite, Detail: fmt.Sprintf("site %q is not a peer of this gateway", site)}
		}
		if existing != nil && site != existing.info.Site {
			return &pki.AuthError{Err: pki.ErrWrongSite, Detail: fmt.Sprintf("site %q at the address of site %q's session", site, existing.info.Site)}
		}
		return nil
	}
	err := hs.run(l.ctx, RoleServer, l.cfg.Identity, verify, l.cfg.HandshakeTimeout)
	var gen *keyGen
	if err == nil {
		gen, err = newKeyGen(hs, l.set.rekeyRecords)
	}
	l.ep.pending.Add(-1)
	if err != nil {
		p.hs.CompareAndSwap(hs, nil)
		hs.end()
		if p.sess.Load() == nil && p.hs.Load() == nil {
			l.ep.removePeer(p)
		}
		if existing != nil {
			l.ep.counters.RekeyFailures.Add(1)
			return
		}
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
	if existing != nil && existing.installNext(gen) {
		return
	}
	// A new peer, or one whose session ended while it handshook again
	// (it restarted): a new session.
	site, err := siteOf(hs.peerCertificates())
	if err != nil { // verify accepted this very certificate: cannot happen
		hs.end()
		l.ep.removePeer(p)
		return
	}
	info.Site = site
	l.mu.Lock()
	if l.closed || p.gone.Load() {
		l.mu.Unlock()
		hs.end()
		return
	}
	s := runSession(l.ep, p, info, RoleServer, l.set, gen, false)
	l.mu.Unlock()

	l.emit(Connect{Time: time.Now(), PathInfo: info})
	<-s.Done()
	l.emit(Disconnect{Time: time.Now(), PathInfo: info, Reason: s.Err()})
}

// siteOf names the site of an authenticated peer's certificate chain.
func siteOf(peerCerts [][]byte) (string, error) {
	if len(peerCerts) == 0 {
		return "", errors.New("tunnel: no peer certificate")
	}
	leaf, err := x509.ParseCertificate(peerCerts[0])
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
