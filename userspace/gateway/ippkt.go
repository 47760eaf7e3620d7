package gateway

import (
	"encoding/binary"
	"net/netip"
)

// l3Offset returns where the IP header starts in an Ethernet frame (after
// up to two VLAN tags), or -1.
func l3Offset(frame []byte) int {
	off := 14
	if len(frame) < off {
		return -1
	}
	etype := binary.BigEndian.Uint16(frame[12:])
	for i := 0; i < 2 && (etype == 0x8100 || etype == 0x88a8); i++ {
		if len(frame) < off+4 {
			return -1
		}
		etype = binary.BigEndian.Uint16(frame[off+2:])
		off += 4
	}
	if etype != 0x0800 && etype != 0x86dd {
		return -1
	}
	return off
}

// checksumFold finishes a ones' complement sum.
func checksumFold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return checksumFold(sum)
}

// tcpHeader returns the TCP header of a non-fragmented IP packet, or nil.
func tcpHeader(ip []byte) []byte {
	if len(ip) < 1 {
		return nil
	}
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 || ip[9] != 6 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return nil
		}
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl+20 {
			return nil
		}
		return ip[ihl:]
	case 6:
		if len(ip) < 60 || ip[6] != 6 { // no extension headers: they never carry SYNs here
			return nil
		}
		return ip[40:]
	}
	return nil
}

// clampMSS lowers the MSS option of a TCP SYN to at most mss, fixing the
// checksum incrementally (RFC 1624). It reports whether it changed ip.
func clampMSS(ip []byte, mss uint16) bool {
	tcp := tcpHeader(ip)
	if tcp == nil || tcp[13]&0x02 == 0 {
		return false
	}
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || len(tcp) < doff {
		return false
	}
	opts := tcp[20:doff]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; {
		case kind == 0:
			return false
		case kind == 1:
			i++
		case i+1 >= len(opts) || opts[i+1] < 2:
			return false
		case kind == 2 && opts[i+1] == 4 && i+4 <= len(opts):
			old := binary.BigEndian.Uint16(opts[i+2:])
			if old <= mss {
				return false
			}
			binary.BigEndian.PutUint16(opts[i+2:], mss)
			sum := uint32(^binary.BigEndian.Uint16(tcp[16:])) + uint32(^old) + uint32(mss)
			binary.BigEndian.PutUint16(tcp[16:], checksumFold(sum))
			return true
		default:
			i += int(opts[i+1])
		}
	}
	return false
}

// tooBig builds the ICMP error telling the sender of ip that the path MTU
// is mtu: fragmentation needed (IPv4) or packet too big (IPv6). It returns
// the ICMP message (the kernel adds the IP header when it is sent on a raw
// socket, and the ICMPv6 checksum) and its destination, or nil for packets
// that must not get one (ICMP errors, non-first fragments).
func tooBig(ip []byte, mtu int) ([]byte, netip.Addr) {
	if len(ip) < 1 {
		return nil, netip.Addr{}
	}
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < 20 || binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
			return nil, netip.Addr{}
		}
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] == 1 && len(ip) > ihl && ip[ihl] != 0 && ip[ihl] != 8 {
			return nil, netip.Addr{} // never answer an ICMP error
		}
		quote := ip[:min(len(ip), ihl+8)]
		icmp := make([]byte, 8+len(quote))
		icmp[0], icmp[1] = 3, 4 // destination unreachable, fragmentation needed
		binary.BigEndian.PutUint16(icmp[6:], uint16(mtu))
		copy(icmp[8:], quote)
		binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, 0))
		return icmp, netip.AddrFrom4([4]byte(ip[12:16]))
	case 6:
		if len(ip) < 40 || (ip[6] == 58 && len(ip) > 40 && ip[40] < 128) {
			return nil, netip.Addr{}
		}
		quote := ip[:min(len(ip), 1280-48)]
		icmp := make([]byte, 8+len(quote))
		icmp[0] = 2 // packet too big
		binary.BigEndian.PutUint32(icmp[4:], uint32(mtu))
		copy(icmp[8:], quote)
		return icmp, netip.AddrFrom16([16]byte(ip[8:24]))
	}
	return nil, netip.Addr{}
}
