package tunnel

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/transport/v5/deadline"

	"github.com/xwan-dev/xwan/userspace/record"
)

// handshake runs one DTLS handshake with pion over an endpoint's socket,
// then hands the record layer over to this package.
//
// pion does not own the socket: it gets this virtual net.PacketConn, fed
// by the endpoint's reader with the peer's handshake records only, and
// writing through WriteTo. The hand-over (takeOver) happens under the same
// lock as WriteTo: the state, and with it the next sequence number, is
// taken while pion cannot write, and from then on every record pion writes
// is filtered. Epoch 0 (plaintext handshake retransmissions) goes out as
// is; a handshake record of the new epoch (a retransmitted Finished) is
// opened and sealed again with a sequence number from the session's Sealer,
// the one counter of that key; anything else (alerts such as the
// close_notify of pion's Close, application data) is dropped. So the only
// records of the new epoch on the wire are the ones pion sent before the
// hand-over, whose numbers are below the Sealer's first, and the Sealer's.
type handshake struct {
	ep        *sock
	remote    netip.AddrPort
	conn      *dtls.Conn
	in        chan []byte
	rd        *deadline.Deadline
	closed    chan struct{}
	closeMu   sync.Once
	started   time.Time
	finished  atomic.Bool // completed and handed over
	installed atomic.Bool // its keys are in the session (or it has none to give)

	mu     sync.Mutex
	sealer *record.Sealer // set by takeOver
}

func newHandshake(ep *sock, remote netip.AddrPort) *handshake {
	return &handshake{ep: ep, remote: remote, in: make(chan []byte, 64), rd: deadline.New(), closed: make(chan struct{}), started: time.Now()}
}

// deliver queues a record from the peer for pion (reader goroutine).
func (h *handshake) deliver(rec []byte) {
	select {
	case h.in <- append([]byte(nil), rec...):
	default: // pion is behind; the peer retransmits
	}
}

// ReadFrom implements net.PacketConn for pion.
func (h *handshake) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-h.rd.Done():
		return 0, nil, os.ErrDeadlineExceeded
	default:
	}
	select {
	case d := <-h.in:
		return copy(b, d), net.UDPAddrFromAddrPort(h.remote), nil
	case <-h.closed:
		return 0, nil, net.ErrClosed
	case <-h.rd.Done():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// WriteTo implements net.PacketConn for pion (see the type's comment).
func (h *handshake) WriteTo(b []byte, _ net.Addr) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closed:
		return 0, net.ErrClosed
	default:
	}
	out := b
	if h.sealer != nil {
		out = h.filter(b)
		if len(out) == 0 {
			return len(b), nil
		}
	}
	if err := h.ep.conn.write([]wireMsg{{buf: out, addr: h.remote}}); err != nil {
		return 0, err
	}
	return len(b), nil
}

// filter is what may leave of a datagram pion writes after the hand-over.
func (h *handshake) filter(b []byte) []byte {
	c := h.ep.counters
	var out []byte
	for rest := b; len(rest) > 0; {
		hd, rec, r, err := record.Split(rest)
		if err != nil {
			c.PionSuppressed.Add(1)
			break
		}
		rest = r
		switch {
		case hd.Epoch == 0 && hd.Type != record.Alert:
			out = append(out, rec...)
		case hd.Epoch == h.sealer.Epoch() && hd.Type == record.Handshake:
			resealed, err := h.sealer.Reseal(out, rec)
			if err != nil {
				c.PionSuppressed.Add(1)
				continue
			}
			out = resealed
			c.PionResealed.Add(1)
		default:
			c.PionSuppressed.Add(1)
		}
	}
	return out
}

// Close implements net.PacketConn: it ends pion's view of the socket (the
// socket itself belongs to the endpoint).
func (h *handshake) Close() error {
	h.closeMu.Do(func() { close(h.closed) })
	return nil
}

func (h *handshake) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(h.ep.conn.localAddr())
}

func (h *handshake) SetDeadline(t time.Time) error { return h.SetReadDeadline(t) }

func (h *handshake) SetReadDeadline(t time.Time) error {
	h.rd.Set(t)
	return nil
}

func (h *handshake) SetWriteDeadline(time.Time) error { return nil }

// run makes pion's Conn in role and runs the handshake within timeout.
func (h *handshake) run(ctx context.Context, role Role, id Identity, verify verifyPeer, timeout time.Duration) error {
	var err error
	remote := net.UDPAddrFromAddrPort(h.remote)
	if role == RoleServer {
		h.conn, err = dtls.ServerWithOptions(h, remote, serverOptions(id, verify)...)
	} else {
		h.conn, err = dtls.ClientWithOptions(h, remote, clientOptions(id, verify)...)
	}
	if err != nil {
		h.Close()
		return err
	}
	return handshakeWithin(ctx, h.conn, timeout)
}

// takeOver rebuilds the session's record layer from pion's state: the
// Sealer continues where pion stopped and from now on pion's writes are
// filtered (see the type's comment).
func (h *handshake) takeOver(maxRecords uint64) (record.Keys, *record.Sealer, *record.Opener, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	state, ok := h.conn.ConnectionState()
	if !ok {
		return record.Keys{}, nil, nil, errNoState
	}
	keys, err := record.FromPion(state)
	if err != nil {
		return keys, nil, nil, err
	}
	sealer, err := keys.Sealer(maxRecords)
	if err != nil {
		return keys, nil, nil, err
	}
	opener, err := keys.Opener()
	if err != nil {
		return keys, nil, nil, err
	}
	h.sealer = sealer
	h.finished.Store(true)
	return keys, sealer, opener, nil
}

// end closes pion's Conn: whatever it sends on the way out is filtered.
func (h *handshake) end() {
	if h.conn != nil {
		_ = h.conn.Close()
	}
	h.Close()
}

// peerCertificates are the certificates the peer presented.
func (h *handshake) peerCertificates() [][]byte {
	state, ok := h.conn.ConnectionState()
	if !ok {
		return nil
	}
	return state.PeerCertificates
}
