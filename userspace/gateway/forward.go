package gateway

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/tunnel"
	"github.com/xwan-dev/xwan/userspace/xsk"
)

// counters of the userspace data path, by reason.
type counters struct {
	lanToTunnel       atomic.Uint64
	tunToTunnel       atomic.Uint64
	tunnelToLAN       atomic.Uint64
	noMeta            atomic.Uint64 // AF_XDP frame without xwan metadata
	notIP             atomic.Uint64
	pathDown          atomic.Uint64 // the chosen path had no session
	tooBig            atomic.Uint64 // answered with ICMP fragmentation needed / packet too big
	mssClamped        atomic.Uint64
	sendErrors        atomic.Uint64
	tunWriteErrors    atomic.Uint64
	tunNoDecision     atomic.Uint64 // a packet from the device that no tunnel takes
	handshakeFailures atomic.Uint64
	failovers         atomic.Uint64
	failbacks         atomic.Uint64
	flowsMoved        atomic.Uint64 // established flows moved by a gradual migration
	moveErrors        atomic.Uint64

	tunnel tunnel.Counters // the tunnels' record layer: drops by reason, rekeys
}

// maxMSS is the TCP MSS that fits the inner MTU.
func (g *Gateway) maxMSS(ipv6 bool) uint16 {
	if ipv6 {
		return uint16(g.innerMTU - 60)
	}
	return uint16(g.innerMTU - 40)
}

// toTunnel queues one IP packet for a path in tx (sent when the caller
// flushes it): MSS clamped, or answered with an ICMP error when it does not
// fit the tunnel.
func (g *Gateway) toTunnel(tx *txBatch, pathID uint16, ip []byte) {
	if len(ip) == 0 {
		return
	}
	v6 := ip[0]>>4 == 6
	if g.cfg.Tunnel.MSSClamp && clampMSS(ip, g.maxMSS(v6)) {
		g.counters.mssClamped.Add(1)
	}
	if len(ip) > g.innerMTU {
		if icmp, dst := tooBig(ip, g.innerMTU); icmp != nil {
			g.counters.tooBig.Add(1)
			g.sendICMP(icmp, dst)
		}
		return
	}
	t := tunnel.FrameIPv4
	if v6 {
		t = tunnel.FrameIPv6
	}
	if err := tx.add(g, pathID, t, ip); err != nil {
		if errors.Is(err, errNoPath) {
			g.counters.pathDown.Add(1)
		} else {
			g.counters.sendErrors.Add(1)
		}
	}
}

// readXSK moves frames the LAN program handed to one AF_XDP socket into
// their tunnels, using the kernel's decision from the metadata.
func (g *Gateway) readXSK(s *xsk.Socket) {
	defer g.wg.Done()
	defer s.Close()
	batch := make([]xsk.Frame, 64)
	tx := newTxBatch()
	for g.ctx.Err() == nil {
		n, err := s.Receive(batch, 100*time.Millisecond)
		if err != nil {
			if g.ctx.Err() == nil {
				g.bus.Publish(eventInternal("af_xdp receive: " + err.Error()))
			}
			return
		}
		for i := range batch[:n] {
			f := &batch[i]
			if !f.HasMeta {
				g.counters.noMeta.Add(1)
				continue
			}
			off := l3Offset(f.Data)
			if off < 0 {
				g.counters.notIP.Add(1)
				continue
			}
			g.counters.lanToTunnel.Add(1)
			g.toTunnel(tx, f.Meta.PathID, f.Data[off:])
		}
		g.flushTx(tx)
		s.Release(batch[:n])
	}
}

// readTun classifies what the kernel routes to the tunnel device (the
// gateway's own traffic, and LAN traffic passed without an AF_XDP socket)
// with the Go model and sends it on its way.
func (g *Gateway) readTun() {
	defer g.wg.Done()
	n := g.tun.BatchSize()
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, tunOffset+65535)
	}
	tx := newTxBatch()
	for {
		count, err := g.tun.Read(bufs, sizes, tunOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || g.ctx.Err() != nil {
				return
			}
			continue
		}
		for i := 0; i < count; i++ {
			ip := bufs[i][tunOffset : tunOffset+sizes[i]]
			p, _, ok := packet.ParseIP(ip)
			if !ok {
				g.counters.notIP.Add(1)
				continue
			}
			g.mu.RLock()
			res := g.model.Decide(p)
			g.mu.RUnlock()
			if res.Meta == nil || !policy.Transport(res.Meta.Transport).Tunnel() {
				g.counters.tunNoDecision.Add(1)
				continue
			}
			g.counters.tunToTunnel.Add(1)
			g.toTunnel(tx, res.Meta.PathID, ip)
		}
		g.flushTx(tx)
	}
}

// fromTunnel writes IP packets that arrive from a peer to the device; the
// kernel routes them to the LAN.
func (g *Gateway) fromTunnel(s *tunnel.Session, t tunnel.FrameType, payload []byte) {
	switch t {
	case tunnel.FrameIPv4, tunnel.FrameIPv6:
		g.counters.tunnelToLAN.Add(1)
		g.writeTun(payload)
	case tunnel.FrameProbe, tunnel.FrameProbeReply:
		g.onProbeFrame(s, t, payload)
	}
}

func (g *Gateway) writeTun(ip []byte) {
	buf := make([]byte, tunOffset+len(ip))
	copy(buf[tunOffset:], ip)
	if _, err := g.tun.Write([][]byte{buf}, tunOffset); err != nil {
		g.counters.tunWriteErrors.Add(1)
	}
}

// sendICMP sends an ICMP error to a LAN host from the gateway itself, on a
// raw socket: written to the tunnel device instead, a packet from one of
// the gateway's own addresses would be dropped as a martian.
func (g *Gateway) sendICMP(msg []byte, dst netip.Addr) {
	c := g.icmp4
	if dst.Is6() {
		c = g.icmp6
	}
	if c == nil {
		return
	}
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		g.counters.sendErrors.Add(1)
	}
}
