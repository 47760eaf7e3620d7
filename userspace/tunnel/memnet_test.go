package tunnel

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// memNet is an in-memory datagram network for unit tests: sockets bound to
// addresses, datagrams delivered in order unless a filter drops them (or the
// receiver's queue is full, like a real socket buffer), and a log of every
// datagram sent.
type memNet struct {
	mu      sync.Mutex
	sockets map[netip.AddrPort]*memConn
	drop    func(from, to netip.AddrPort) bool
	// dropData, if set, also sees the datagram's bytes.
	dropData func(from, to netip.AddrPort, data []byte) bool
	log      []datagram
	// sentOne gets a token whenever a datagram is sent.
	sentOne chan struct{}
}

type datagram struct {
	from, to netip.AddrPort
	data     []byte
}

func newMemNet() *memNet {
	return &memNet{sockets: make(map[netip.AddrPort]*memConn), sentOne: make(chan struct{}, 1)}
}

// listen binds a socket to addr, which must be free.
func (n *memNet) listen(addr netip.AddrPort) (net.PacketConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, busy := n.sockets[addr]; busy {
		return nil, &net.OpError{Op: "listen", Net: "mem", Addr: net.UDPAddrFromAddrPort(addr), Err: os.ErrExist}
	}
	c := &memConn{net: n, addr: addr, in: make(chan datagram, 512), closed: make(chan struct{}), readDeadline: deadline.New()}
	n.sockets[addr] = c
	return c, nil
}

// socket returns a SessionConfig.Socket that binds addr.
func (n *memNet) socket(addr netip.AddrPort) func() (net.PacketConn, error) {
	return func() (net.PacketConn, error) { return n.listen(addr) }
}

// setDrop installs a filter: datagrams for which it is true are lost.
func (n *memNet) setDrop(drop func(from, to netip.AddrPort) bool) {
	n.mu.Lock()
	n.drop = drop
	n.mu.Unlock()
}

// setDropData installs a filter that sees the datagrams' bytes.
func (n *memNet) setDropData(drop func(from, to netip.AddrPort, data []byte) bool) {
	n.mu.Lock()
	n.dropData = drop
	n.mu.Unlock()
}

// inject delivers a datagram as if from sent from, without a socket there.
func (n *memNet) inject(from, to netip.AddrPort, data []byte) {
	n.deliver(datagram{from: from, to: to, data: append([]byte(nil), data...)})
}

// sent returns a copy of the datagrams sent from one address to another.
func (n *memNet) sent(from, to netip.AddrPort) [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out [][]byte
	for _, d := range n.log {
		if d.from == from && d.to == to {
			out = append(out, d.data)
		}
	}
	return out
}

// waitSent waits until at least count datagrams from one address to
// another satisfy match, and returns them.
func (n *memNet) waitSent(t *testing.T, from, to netip.AddrPort, count int, match func([]byte) bool) [][]byte {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		var matched [][]byte
		for _, d := range n.sent(from, to) {
			if match(d) {
				matched = append(matched, d)
			}
		}
		if len(matched) >= count {
			return matched
		}
		select {
		case <-n.sentOne:
		case <-timeout.C:
			t.Fatalf("%d matching datagrams from %s to %s, want %d", len(matched), from, to, count)
		}
	}
}

func (n *memNet) deliver(d datagram) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.log = append(n.log, d)
	select {
	case n.sentOne <- struct{}{}:
	default:
	}
	if n.drop != nil && n.drop(d.from, d.to) {
		return
	}
	if n.dropData != nil && n.dropData(d.from, d.to, d.data) {
		return
	}
	dst := n.sockets[d.to]
	if dst == nil {
		return
	}
	select {
	case dst.in <- d:
	default:
	}
}

type memConn struct {
	net          *memNet
	addr         netip.AddrPort
	in           chan datagram
	closeOnce    sync.Once
	closed       chan struct{}
	readDeadline *deadline.Deadline
}

func (c *memConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-c.readDeadline.Done():
		return 0, nil, os.ErrDeadlineExceeded
	default:
	}
	select {
	case d := <-c.in:
		return copy(b, d.data), net.UDPAddrFromAddrPort(d.from), nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	case <-c.readDeadline.Done():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (c *memConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	to := addr.(*net.UDPAddr).AddrPort()
	c.net.deliver(datagram{from: c.addr, to: netip.AddrPortFrom(to.Addr().Unmap(), to.Port()), data: append([]byte(nil), b...)})
	return len(b), nil
}

// Close unbinds the socket. Nothing is sent: closing the socket under a
// session is how a test makes a peer crash.
func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		if c.net.sockets[c.addr] == c {
			delete(c.net.sockets, c.addr)
		}
		c.net.mu.Unlock()
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.addr) }

func (c *memConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Set(t)
	return nil
}

func (c *memConn) SetWriteDeadline(time.Time) error { return nil } // writes never block
