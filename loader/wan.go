package loader

import (
	"errors"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/userspace/policy"
)

// WAN program reasons (stats_wan).
const (
	WANPeer        = 0 // pass: tunnel traffic from a known peer
	WANUnknownPeer = 1 // drop: tunnel port, unknown source
	WANOther       = 2 // pass: not for the tunnel port
	WANFragment    = 3 // pass: a later fragment, no port to check
	wanReasons     = 4
)

// SetTunnelPort tells the WAN program which UDP port the tunnels listen
// on; 0 turns the guard off.
func (d *Datapath) SetTunnelPort(port uint16) error {
	v := xdpwanWanSettings{TunnelPort: port}
	return d.wan.WanConfig.Put(uint32(0), &v)
}

func peerKey(ap netip.AddrPort) xdpwanPeerKey {
	a, _ := policy.Mapped(netip.PrefixFrom(ap.Addr(), ap.Addr().BitLen()))
	return xdpwanPeerKey{Addr: a, Port: ap.Port()}
}

// AllowPeer lets a peer endpoint reach the tunnel port; port 0 allows
// every source port of the address (peers dial from ephemeral ports).
func (d *Datapath) AllowPeer(ep netip.AddrPort, site uint16) error {
	k := peerKey(ep)
	v := xdpwanPeerInfo{SiteId: site}
	return d.wan.PeerAllow.Put(&k, &v)
}

// DisallowPeer removes a peer endpoint.
func (d *Datapath) DisallowPeer(ep netip.AddrPort) error {
	k := peerKey(ep)
	if err := d.wan.PeerAllow.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// AllowedPeers lists the allowed peer endpoints and their sites.
func (d *Datapath) AllowedPeers() (map[netip.AddrPort]uint16, error) {
	out := map[netip.AddrPort]uint16{}
	var k xdpwanPeerKey
	var v xdpwanPeerInfo
	it := d.wan.PeerAllow.Iterate()
	for it.Next(&k, &v) {
		out[netip.AddrPortFrom(netip.AddrFrom16(k.Addr).Unmap(), k.Port)] = v.SiteId
	}
	return out, it.Err()
}

// WANStats returns packets and bytes per WAN reason (WANPeer...).
func (d *Datapath) WANStats() ([]Counter, error) {
	return sumPerCPU(d.wan.StatsWan, wanReasons)
}
