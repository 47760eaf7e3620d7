package gateway

import (
	"sync"

	"github.com/xwan-dev/xwan/userspace/tunnel"
)

// The data path in batches (docs/bench.md, "Fast data path"):
//
//   - LAN → tunnel: each AF_XDP queue's goroutine (readXSK) receives up to
//     64 frames, seals each into its path's pending records (txBatch, a
//     tunnel.Batch) and sends them all with one sendmmsg per socket, runs
//     of equal-sized records as UDP GSO messages; the tunnel device's
//     reader (readTun) does the same with what it reads.
//   - tunnel → LAN: each tunnel socket's reader (userspace/tunnel) reads
//     batches of datagrams (recvmmsg, UDP GRO), opens the records in place
//     and hands all the frames of a batch to fromTunnelBatch, which writes
//     the IP packets to the tunnel device with one call, so that its GRO
//     coalesces TCP segments into a few large packets for the kernel to
//     forward. Probe and control frames go on to fromTunnel, one by one.
//
// So each direction is one goroutine that runs a batch to completion
// (read, crypto, write) with no hand-off between goroutines: on the
// gateway's cores, the LAN→tunnel and tunnel→LAN pipelines (and, with
// more queues or peers, one per queue and per socket) run in parallel.

// txBatch is one sending goroutine's batch, with the sessions of the paths
// it used resolved once per batch rather than once per packet.
type txBatch struct {
	b    *tunnel.Batch
	ids  [16]uint16
	sess [16]*tunnel.Session
	n    int
}

func newTxBatch() *txBatch { return &txBatch{b: tunnel.NewBatch()} }

// session returns path id's session, nil while the path is down.
func (g *Gateway) session(id uint16) *tunnel.Session {
	if id == 0 || int(id) > len(g.paths) {
		return nil
	}
	p := g.paths[id-1]
	if p.dialer {
		if p.client == nil {
			return nil
		}
		return p.client.Session()
	}
	g.mu.RLock()
	s := p.session
	g.mu.RUnlock()
	return s
}

// add queues one frame for a path.
func (tx *txBatch) add(g *Gateway, id uint16, t tunnel.FrameType, payload []byte) error {
	var s *tunnel.Session
	found := false
	for i := 0; i < tx.n; i++ {
		if tx.ids[i] == id {
			s, found = tx.sess[i], true
			break
		}
	}
	if !found {
		s = g.session(id)
		if tx.n < len(tx.ids) {
			tx.ids[tx.n], tx.sess[tx.n] = id, s
			tx.n++
		}
	}
	if s == nil {
		return errNoPath
	}
	return tx.b.Add(s, t, payload)
}

// flush sends what the batch holds.
func (g *Gateway) flushTx(tx *txBatch) {
	if err := tx.b.Flush(); err != nil {
		g.counters.sendErrors.Add(1)
	}
	clear(tx.sess[:tx.n])
	tx.n = 0
}

// tunBatch is the size of one write to the tunnel device.
const tunBatch = 64

// tunWriter holds IP packets for one write to the tunnel device. Each
// buffer can grow to a full 64 KiB packet: the device's GRO appends the
// segments it coalesces to the first one's buffer.
type tunWriter struct {
	bufs [tunBatch][]byte
	out  [][]byte
}

var tunWriters = sync.Pool{New: func() any {
	w := &tunWriter{out: make([][]byte, 0, tunBatch)}
	for i := range w.bufs {
		w.bufs[i] = make([]byte, tunOffset+65535)
	}
	return w
}}

// fromTunnelBatch is the tunnels' BatchHandler: IP packets go to the
// device in batches, everything else to fromTunnel.
func (g *Gateway) fromTunnelBatch(frames []tunnel.Frame) {
	var w *tunWriter
	ip := 0
	for _, f := range frames {
		switch f.Type {
		case tunnel.FrameIPv4, tunnel.FrameIPv6:
			if len(f.Payload) > 65535 {
				continue
			}
			if w == nil {
				w = tunWriters.Get().(*tunWriter)
			}
			b := w.bufs[len(w.out)]
			w.out = append(w.out, b[:tunOffset+copy(b[tunOffset:], f.Payload)])
			ip++
			if len(w.out) == tunBatch {
				g.writeTunBatch(w)
			}
		default:
			g.fromTunnel(f.Session, f.Type, f.Payload)
		}
	}
	if w != nil {
		g.writeTunBatch(w)
		tunWriters.Put(w)
	}
	g.counters.tunnelToLAN.Add(uint64(ip))
}

func (g *Gateway) writeTunBatch(w *tunWriter) {
	if len(w.out) == 0 {
		return
	}
	if _, err := g.tun.Write(w.out, tunOffset); err != nil {
		g.counters.tunWriteErrors.Add(1)
	}
	clear(w.out)
	w.out = w.out[:0]
}
