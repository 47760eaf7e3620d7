package tunnel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Link is the local WAN link a path leaves from.
type Link struct {
	// Name is the link's interface name, used in events and, with
	// BindToDevice, for SO_BINDTODEVICE.
	Name string
	// Addr is the link's address and the UDP port to bind (0: any).
	Addr netip.AddrPort
	// BindToDevice pins the socket to the interface Name.
	//
	// Binding to the link's address only fixes the source address: the
	// kernel still chooses the egress interface and next hop from the
	// routing table, so with two WAN links the packets of link B's socket
	// follow the main table's default route out of link A (where B's ISP
	// address is dropped as spoofed) unless policy routing ("ip rule add
	// from <B's address> table B") sends them out of B. SO_BINDTODEVICE
	// removes that dependency: route lookups for the socket are restricted
	// to routes through the interface, and only datagrams that arrived on
	// it are delivered. It needs a route through the interface (e.g. a
	// default route via B's gateway with a higher metric) and CAP_NET_RAW.
	// It is optional because gateways that already run policy routing, or
	// put each WAN link in its own VRF, do not need it.
	BindToDevice bool
}

// check reports a link that cannot be bound: without an address (unless
// the caller brings its own socket) or pinned to an unnamed device.
func (l Link) check(needAddr bool) error {
	if needAddr && !l.Addr.IsValid() {
		return fmt.Errorf("tunnel: link %q has no address", l.Name)
	}
	if l.BindToDevice && l.Name == "" {
		return fmt.Errorf("tunnel: link at %v: BindToDevice needs the interface name", l.Addr)
	}
	return nil
}

// socketBuffer is the send and receive buffer size asked of the kernel: a
// burst of full-size records (and, with GRO, of coalesced ones) must not
// overflow the default of a few hundred kilobytes.
const socketBuffer = 8 << 20

// listenConfig is how every xwan tunnel socket is made for link.
func listenConfig(link Link) net.ListenConfig {
	return net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// The FORCE variants (CAP_NET_ADMIN) go past
			// net.core.[rw]mem_max; without the capability, the plain
			// ones are capped there.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
			}
			if link.BindToDevice {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, link.Name)
				if serr != nil {
					serr = fmt.Errorf("SO_BINDTODEVICE %s: %w", link.Name, serr)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

// network is "udp4" or "udp6" for addr, so that a socket bound to an IPv4
// link address is an IPv4 socket.
func network(addr netip.Addr) string {
	if addr.Is4() {
		return "udp4"
	}
	return "udp6"
}

// listenUDP opens the UDP socket of one path (or listener) on link. It is
// not connected: a listener's serves many peers, and every socket is
// written with sendmmsg and explicit addresses.
func listenUDP(link Link) (net.PacketConn, error) {
	lc := listenConfig(link)
	addr := netip.AddrPortFrom(link.Addr.Addr().Unmap(), link.Addr.Port())
	pc, err := lc.ListenPacket(context.Background(), network(addr.Addr()), addr.String())
	if err != nil {
		return nil, fmt.Errorf("tunnel: link %s: %w", link.Name, err)
	}
	return pc, nil
}
