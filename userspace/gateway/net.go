package gateway

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/xwan-dev/xwan/userspace/tunnel"
	"github.com/xwan-dev/xwan/userspace/xsk"
	"golang.org/x/sys/unix"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

var errNotExist = ebpf.ErrKeyNotExist

// RouteProtocol marks the kernel routes xwand installs (remote site
// prefixes to the tunnel device), so they can be told from others.
const RouteProtocol netlink.RouteProtocol = 0xb1

// firstAddr returns an interface's first global address, IPv4 first.
func firstAddr(ifname string) (netip.Addr, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", ifname, err)
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		addrs, err := netlink.AddrList(l, family)
		if err != nil {
			return netip.Addr{}, err
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && ip.IsGlobalUnicast() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no global address", ifname)
}

// resolveLinks finds the tunnel source address of every WAN link and the
// LAN address ICMP errors come from, and the inner MTU.
func (g *Gateway) resolveLinks() error {
	g.innerMTU = 0
	for _, l := range g.cfg.WAN {
		addr := l.Address
		if !addr.IsValid() {
			a, err := firstAddr(l.Interface)
			if err != nil {
				return fmt.Errorf("%s: wan link %s: %w", g.cfg.File, l.Name, err)
			}
			addr = a
		}
		g.links[l.Name] = addr
		ifc, err := net.InterfaceByName(l.Interface)
		if err != nil {
			return fmt.Errorf("%s: wan link %s: %w", g.cfg.File, l.Name, err)
		}
		mtu, err := tunnel.InnerMTU(ifc.MTU, addr)
		if err != nil {
			return err
		}
		if l.OffCloud && (g.innerMTU == 0 || mtu < g.innerMTU) {
			g.innerMTU = mtu
		}
	}
	if g.innerMTU == 0 {
		g.innerMTU = 1280
	}
	return nil
}

// openTun creates the tunnel device with the inner MTU and routes every
// peer prefix to it, so the gateway's own traffic (and anything the LAN
// program passes for lack of an AF_XDP socket) reaches the tunnels.
func (g *Gateway) openTun() error {
	if old, err := netlink.LinkByName(TunName); err == nil {
		// A device left by a crashed xwand (they are not persistent, so
		// this is another program's): refuse rather than take it over.
		return fmt.Errorf("a device named %s exists already (%s)", TunName, old.Type())
	}
	dev, err := wgtun.CreateTUN(TunName, g.innerMTU)
	if err != nil {
		return fmt.Errorf("creating %s: %w", TunName, err)
	}
	g.tun = dev
	l, err := netlink.LinkByName(TunName)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return err
	}
	// Forwarding between the LAN, the tunnel device and the WAN links.
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := writeSysctl(f, "1"); err != nil {
			return err
		}
	}
	for _, peer := range g.cfg.Peers {
		for _, p := range peer.Prefixes {
			r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixNet(p), Protocol: RouteProtocol, Scope: netlink.SCOPE_LINK}
			if err := netlink.RouteReplace(r); err != nil {
				return fmt.Errorf("route %s dev %s: %w", p, TunName, err)
			}
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func writeSysctl(path, v string) error {
	fd, err := unix.Open(path, unix.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(v))
	return err
}

// rxQueues returns an interface's index and how many RX queues AF_XDP
// sockets can bind to.
func rxQueues(ifname string) (int, int, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return 0, 0, err
	}
	n, err := xsk.QueueCount(ifname)
	return l.Attrs().Index, n, err
}
