package monitor

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Outcome of one connectivity test or probe.
type Outcome string

const (
	// Success: an echo reply came back.
	Success Outcome = "success"
	// Failed: the probe was sent and no reply came (timeout, or an ICMP
	// error such as destination unreachable).
	Failed Outcome = "failed"
	// Error: the probe could not be sent (no route, source address not on
	// this host, no permission, invalid address).
	Error Outcome = "error"
)

// Result is the outcome of a probe, with the reason when it is not a
// success.
type Result struct {
	Outcome Outcome       `json:"outcome"`
	To      netip.Addr    `json:"to"`
	From    netip.Addr    `json:"from,omitzero"`
	RTT     time.Duration `json:"rtt,omitempty"`
	Reason  string        `json:"reason,omitempty"`
	Time    time.Time     `json:"time"`

	timedOut bool // Failed for want of a reply (not an ICMP error)
}

// pinger owns one ICMP socket for one destination. Its socket is created
// in the network namespace of the calling thread, so a caller may create
// it inside a namespace and use it from anywhere.
type pinger struct {
	conn  *icmp.PacketConn
	dst   netip.Addr
	src   netip.Addr
	raw   bool // raw socket: sees every ICMP packet, match the id ourselves
	id    int
	seq   int
	token [8]byte
}

// newPinger opens the socket: an unprivileged ping socket if
// net.ipv4.ping_group_range allows it, a raw socket otherwise (root or
// CAP_NET_RAW). A source address that is not on this host is an error here.
func newPinger(dst, src netip.Addr) (*pinger, error) {
	if !dst.IsValid() {
		return nil, errors.New("invalid destination address")
	}
	if src.IsValid() && src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("source %s and destination %s are of different address families", src, dst)
	}
	dst = dst.Unmap()
	laddr := "0.0.0.0"
	udp, raw := "udp4", "ip4:icmp"
	if dst.Is6() {
		laddr, udp, raw = "::", "udp6", "ip6:ipv6-icmp"
	}
	if src.IsValid() {
		laddr = src.String()
	}
	p := &pinger{dst: dst, src: src}
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	p.id = int(binary.BigEndian.Uint16(b[:2]))
	copy(p.token[:], b[2:])

	conn, err := icmp.ListenPacket(udp, laddr)
	if err != nil && (errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EPROTONOSUPPORT)) {
		conn, err = icmp.ListenPacket(raw, laddr)
		p.raw = true
	}
	if err != nil {
		return nil, sendError(err, dst, src)
	}
	p.conn = conn
	return p, nil
}

func (p *pinger) close() error { return p.conn.Close() }

// sendError words a failure to open or write the socket.
func sendError(err error, dst, src netip.Addr) error {
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("source address %s is not on this host", src)
	case errors.Is(err, syscall.ENETUNREACH):
		return fmt.Errorf("no route to %s", dst)
	case errors.Is(err, syscall.EHOSTUNREACH):
		return fmt.Errorf("host %s unreachable (no neighbour answers on the link)", dst)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("not permitted to send ICMP (needs CAP_NET_RAW or net.ipv4.ping_group_range): %v", err)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("cannot send from %v to %s: %v", src, dst, err)
	}
	return err
}

// probe sends one echo request and waits up to timeout (or ctx) for the
// reply.
func (p *pinger) probe(ctx context.Context, timeout time.Duration) Result {
	res := Result{To: p.dst, From: p.src, Time: time.Now()}
	p.seq = (p.seq + 1) & 0xffff
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if p.dst.Is6() {
		typ = ipv6.ICMPTypeEchoRequest
	}
	payload := make([]byte, 16)
	copy(payload, p.token[:])
	binary.BigEndian.PutUint64(payload[8:], uint64(res.Time.UnixNano()))
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: p.id, Seq: p.seq, Data: payload}}
	wire, err := msg.Marshal(nil) // ICMPv6: the kernel fills the checksum in
	if err != nil {
		res.Outcome, res.Reason = Error, err.Error()
		return res
	}
	var to net.Addr = &net.IPAddr{IP: p.dst.AsSlice()}
	if !p.raw {
		to = &net.UDPAddr{IP: p.dst.AsSlice()}
	}
	start := time.Now()
	if _, err := p.conn.WriteTo(wire, to); err != nil {
		res.Outcome, res.Reason = Error, sendError(err, p.dst, p.src).Error()
		return res
	}

	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := p.conn.SetReadDeadline(deadline); err != nil {
		res.Outcome, res.Reason = Error, err.Error()
		return res
	}
	// Pulling the deadline in is how a cancelled ctx ends a blocked read.
	stop := context.AfterFunc(ctx, func() { _ = p.conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			res.Outcome = Failed
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				res.Reason = "cancelled: " + ctx.Err().Error()
			case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
				res.Reason = fmt.Sprintf("no reply within %s", deadline.Sub(start).Round(time.Millisecond))
				res.timedOut = true
			default:
				res.Reason = sendError(err, p.dst, p.src).Error()
			}
			return res
		}
		done, outcome, reason := p.match(buf[:n], from)
		if !done {
			continue
		}
		res.Outcome, res.Reason = outcome, reason
		if outcome == Success {
			res.RTT = time.Since(start)
		}
		return res
	}
}

// match reads one received ICMP message: an echo reply of ours, an ICMP
// error about our request, or something else to skip.
func (p *pinger) match(b []byte, from net.Addr) (done bool, outcome Outcome, reason string) {
	proto := 1
	if p.dst.Is6() {
		proto = 58
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil {
		return false, "", ""
	}
	fromAddr := addrOf(from)
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
			return false, "", ""
		}
		// A ping socket rewrites the id and filters for us; a raw socket
		// sees everyone's replies.
		if body.Seq != p.seq || len(body.Data) < 8 || [8]byte(body.Data[:8]) != p.token || (p.raw && body.ID != p.id) {
			return false, "", ""
		}
		if fromAddr != p.dst {
			return false, "", ""
		}
		return true, Success, ""
	case *icmp.DstUnreach:
		if !p.quotesUs(body.Data) {
			return false, "", ""
		}
		return true, Failed, fmt.Sprintf("destination unreachable (%s) reported by %s", unreachCode(m), fromAddr)
	case *icmp.TimeExceeded:
		if !p.quotesUs(body.Data) {
			return false, "", ""
		}
		return true, Failed, fmt.Sprintf("time exceeded (routing loop?) reported by %s", fromAddr)
	}
	return false, "", ""
}

// quotesUs reports whether an ICMP error quotes our echo request (the
// original IP header and the first 8 bytes of our ICMP message).
func (p *pinger) quotesUs(data []byte) bool {
	var hdrLen int
	if p.dst.Is4() {
		if len(data) < 20 {
			return false
		}
		hdrLen = int(data[0]&0x0f) * 4
		if netip.AddrFrom4([4]byte(data[16:20])) != p.dst {
			return false
		}
	} else {
		if len(data) < 40 {
			return false
		}
		hdrLen = 40
		if netip.AddrFrom16([16]byte(data[24:40])) != p.dst {
			return false
		}
	}
	if len(data) < hdrLen+8 {
		return false
	}
	icmpHdr := data[hdrLen:]
	seq := int(binary.BigEndian.Uint16(icmpHdr[6:8]))
	id := int(binary.BigEndian.Uint16(icmpHdr[4:6]))
	return seq == p.seq && (!p.raw || id == p.id)
}

func unreachCode(m *icmp.Message) string {
	if m.Type == ipv4.ICMPTypeDestinationUnreachable {
		switch m.Code {
		case 0:
			return "network unreachable"
		case 1:
			return "host unreachable"
		case 3:
			return "port unreachable"
		case 9, 10, 13:
			return "administratively prohibited"
		}
		return fmt.Sprintf("code %d", m.Code)
	}
	switch m.Code {
	case 0:
		return "no route"
	case 1:
		return "administratively prohibited"
	case 3:
		return "address unreachable"
	}
	return fmt.Sprintf("code %d", m.Code)
}

func addrOf(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

// TestConnectivity sends up to three ICMP echo requests from from (zero:
// the kernel's choice) to to, one at a time, and reports Success at the
// first reply, Failed if none came back, or Error if no probe could be sent.
// It waits at most 1 s per probe and never beyond ctx. The socket is
// created in the calling thread's network namespace.
func TestConnectivity(ctx context.Context, to, from netip.Addr) Result {
	const probes, perProbe = 3, time.Second
	res := Result{To: to, From: from, Time: time.Now()}
	p, err := newPinger(to, from)
	if err != nil {
		res.Outcome, res.Reason = Error, err.Error()
		return res
	}
	defer p.close()
	for i := 0; i < probes; i++ {
		res = p.probe(ctx, perProbe)
		if res.Outcome != Failed || ctx.Err() != nil {
			return res
		}
		// An ICMP error is a definite answer: do not retry it.
		if !res.timedOut {
			return res
		}
	}
	return res
}
