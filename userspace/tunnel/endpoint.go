package tunnel

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xwan-dev/xwan/userspace/record"
)

// sock is one tunnel socket and its reader: a dialing path's own
// socket (one peer), or a listener's (every peer that dials it). The
// reader is the only goroutine that reads the socket. It reads batches of
// datagrams (recvmmsg; with UDP GRO each may hold several), splits them
// into records, and per record:
//
//   - application data and alerts of an established session: opened by
//     the session's record layer (in place), the frames of one batch handed
//     to the frame handler together;
//   - handshake, change-cipher-spec and epoch-0 alert records: queued for
//     the handshake running with that peer (pion), if any;
//   - a ClientHello from an address without a running handshake, on a
//     server socket: a new handshake (a new peer, a rekey, or a peer that
//     restarted);
//   - anything else is counted and dropped.
type sock struct {
	conn     batchConn
	counters *Counters
	onFrame  FrameHandler
	onFrames BatchHandler
	// hello starts a server handshake for a ClientHello from remote: p is
	// the peer at that address or nil. nil on a dialing socket.
	hello func(p *peer, remote netip.AddrPort, rec []byte)

	mu      sync.Mutex
	peers   map[netip.AddrPort]*peer
	closed  bool
	pending atomic.Int32 // server handshakes in progress
	// coalesced counts received messages that held several datagrams (UDP
	// GRO), for tests and benchmarks.
	coalesced atomic.Uint64

	closeOnce  sync.Once
	readerDone chan struct{}
}

// peer is what an endpoint knows about one remote address.
type peer struct {
	remote netip.AddrPort
	sess   atomic.Pointer[Session]   // nil until the first handshake completes
	hs     atomic.Pointer[handshake] // gets the peer's handshake records
	gone   atomic.Bool               // removed from the endpoint

	early [][]byte // application data before the first keys (reader only)
}

// maxEarly bounds the records kept for a session whose keys are not there
// yet (the peer finished its handshake first and already sends).
const maxEarly = 32

func newSock(pc net.PacketConn, counters *Counters, onFrame FrameHandler, onFrames BatchHandler) *sock {
	if counters == nil {
		counters = new(Counters)
	}
	return &sock{
		conn: newBatchConn(pc), counters: counters, onFrame: onFrame, onFrames: onFrames,
		peers: make(map[netip.AddrPort]*peer), readerDone: make(chan struct{}),
	}
}

func (ep *sock) start() { go ep.readLoop() }

// addPeer returns the peer at remote, made if needed; nil once closed.
func (ep *sock) addPeer(remote netip.AddrPort) *peer {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		return nil
	}
	if p := ep.peers[remote]; p != nil {
		return p
	}
	p := &peer{remote: remote}
	ep.peers[remote] = p
	return p
}

func (ep *sock) lookup(remote netip.AddrPort) *peer {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.peers[remote]
}

// removePeer forgets p (its session ended, or its first handshake failed).
func (ep *sock) removePeer(p *peer) {
	ep.mu.Lock()
	if ep.peers[p.remote] == p {
		delete(ep.peers, p.remote)
	}
	ep.mu.Unlock()
	p.gone.Store(true)
}

// sessions lists the established sessions.
func (ep *sock) sessions() []*Session {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	var out []*Session
	for _, p := range ep.peers {
		if s := p.sess.Load(); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// close closes the socket; the reader stops. Safe from the reader itself.
func (ep *sock) close() error {
	var err error
	ep.closeOnce.Do(func() {
		ep.mu.Lock()
		ep.closed = true
		ep.mu.Unlock()
		err = ep.conn.close()
	})
	return err
}

func (ep *sock) isClosed() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.closed
}

func (ep *sock) readLoop() {
	defer close(ep.readerDone)
	msgs := newReadBuffers(ep.conn)
	frames := make([]Frame, 0, 256)
	var last *peer
	for {
		n, err := ep.conn.read(msgs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ep.isClosed() {
				return
			}
			// ICMP errors (port unreachable) and the like: keep reading.
			time.Sleep(time.Millisecond)
			continue
		}
		now := time.Now().UnixNano()
		for i := range msgs[:n] {
			m := &msgs[i]
			p := last
			if p == nil || p.remote != m.addr || p.gone.Load() {
				p = ep.lookup(m.addr)
				if p != nil {
					last = p
				}
			}
			if m.seg <= 0 || m.seg >= len(m.buf) {
				frames = ep.datagram(p, m.addr, m.buf, now, frames)
				continue
			}
			ep.coalesced.Add(1)
			for b := m.buf; len(b) > 0; {
				k := min(m.seg, len(b))
				frames = ep.datagram(p, m.addr, b[:k], now, frames)
				b = b[k:]
			}
		}
		if len(frames) > 0 {
			ep.deliver(frames)
			clear(frames)
			frames = frames[:0]
		}
	}
}

// deliver hands the frames of one batch to the handler.
func (ep *sock) deliver(frames []Frame) {
	if ep.onFrames != nil {
		ep.onFrames(frames)
		return
	}
	if ep.onFrame != nil {
		for _, f := range frames {
			ep.onFrame(f.Session, f.Type, f.Payload)
		}
	}
}

// datagram handles one datagram (one GRO segment) from remote.
func (ep *sock) datagram(p *peer, remote netip.AddrPort, d []byte, now int64, frames []Frame) []Frame {
	c := ep.counters
	if p == nil {
		h, rec, _, err := record.Split(d)
		if err == nil && ep.hello != nil && record.IsClientHello(h, rec) {
			ep.hello(nil, remote, rec)
			return frames
		}
		c.UnknownPeer.Add(1)
		return frames
	}
	s := p.sess.Load()
	if s != nil && len(s.stash) > 0 {
		if hs := p.hs.Load(); hs == nil || hs.installed.Load() {
			stash := s.stash
			s.stash = nil
			for _, rec := range stash {
				frames = ep.datagram(p, remote, rec, now, frames)
			}
		}
	}
	if s != nil && len(p.early) > 0 {
		early := p.early
		p.early = nil
		for _, rec := range early {
			frames = ep.datagram(p, remote, rec, now, frames)
		}
	}
	for len(d) > 0 {
		h, rec, rest, err := record.Split(d)
		if err != nil {
			c.Malformed.Add(1)
			return frames
		}
		d = rest
		switch h.Type {
		case record.ApplicationData:
			if s == nil {
				if len(p.early) < maxEarly {
					p.early = append(p.early, append([]byte(nil), rec...))
				} else {
					c.EarlyDrops.Add(1)
				}
				continue
			}
			frames = s.received(h, rec, now, frames)
		case record.Alert:
			hs := p.hs.Load()
			if h.Epoch == 0 {
				if hs != nil {
					hs.deliver(rec)
				} else {
					c.Unexpected.Add(1)
				}
				continue
			}
			if s != nil && s.alert(h, rec, hs != nil && !hs.finished.Load()) {
				continue
			}
			if hs != nil && !hs.finished.Load() {
				hs.deliver(rec) // the new handshake's own (encrypted) alert
			}
		default: // handshake, change cipher spec
			hs := p.hs.Load()
			if ep.hello != nil && record.IsClientHello(h, rec) && (hs == nil || hs.finished.Load()) {
				ep.hello(p, remote, rec)
				continue
			}
			if hs != nil {
				hs.deliver(rec)
			} else {
				c.Unexpected.Add(1)
			}
		}
	}
	return frames
}
