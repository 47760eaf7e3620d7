// Package packet parses frames the way the LAN XDP program does
// (bpf/include/parse.h), byte for byte: the same headers, the same limits,
// the same reason for every frame it cannot classify. It is the parser of
// the Go reference classifier and of packets the gateway itself sends.
package packet

import (
	"encoding/binary"
	"net/netip"

	"github.com/xwan-dev/xwan/userspace/verdict"
)

// Limits shared with the kernel parser.
const (
	MaxVLANTags = 2
	MaxExtHdrs  = 6    // IPv6 extension headers walked
	MaxL4Offset = 1024 // offsets past this are not followed
)

// Fragment position of a packet.
type Fragment uint8

const (
	NotFragment Fragment = iota
	FirstFragment
	LaterFragment // no L4 header: classified with ports 0, never cached
)

// IP protocol numbers the parser knows.
const (
	ProtoHopOpts  = 0
	ProtoICMP     = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoDstOpts  = 60
)

// Key is the flow key: the same 40 bytes as struct flow_key. IPv4 addresses
// are IPv4-mapped.
type Key struct {
	Src, Dst     [16]byte
	Sport, Dport uint16
	VLAN         uint16 // outer VLAN id, 0 when untagged
	Proto        uint8
}

// SrcAddr returns the source address, unmapped for IPv4.
func (k Key) SrcAddr() netip.Addr { return netip.AddrFrom16(k.Src).Unmap() }

// DstAddr returns the destination address, unmapped for IPv4.
func (k Key) DstAddr() netip.Addr { return netip.AddrFrom16(k.Dst).Unmap() }

// Marshal returns the key in the kernel's layout (little endian).
func (k Key) Marshal() [40]byte {
	var b [40]byte
	copy(b[0:], k.Src[:])
	copy(b[16:], k.Dst[:])
	binary.LittleEndian.PutUint16(b[32:], k.Sport)
	binary.LittleEndian.PutUint16(b[34:], k.Dport)
	binary.LittleEndian.PutUint16(b[36:], k.VLAN)
	b[38] = k.Proto
	return b
}

// Hash is the kernel's flow hash (bpf/include/paths.h): FNV-1a over the
// key's ten little-endian words, then murmur3's 32-bit finaliser.
func (k Key) Hash() uint32 {
	b := k.Marshal()
	h := uint32(0x811c9dc5)
	for i := 0; i < len(b); i += 4 {
		h ^= binary.LittleEndian.Uint32(b[i:])
		h *= 0x01000193
	}
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Packet is what classification needs to know about a frame.
type Packet struct {
	Key  Key
	Frag Fragment
	IPv6 bool
}

func mapped(b []byte) (a [16]byte) {
	a[10], a[11] = 0xff, 0xff
	copy(a[12:], b)
	return a
}

func isExt(p uint8) bool {
	switch p {
	case ProtoHopOpts, ProtoRouting, ProtoDstOpts, ProtoFragment, ProtoAH:
		return true
	}
	return false
}

// ParseEthernet parses an Ethernet frame. ok is false when the frame is not
// an IP packet it can classify; reason then says why.
func ParseEthernet(f []byte) (p Packet, reason verdict.Reason, ok bool) {
	if len(f) < 14 {
		return p, verdict.TruncEth, false
	}
	off := 14
	etype := binary.BigEndian.Uint16(f[12:])
	for i := 0; i < MaxVLANTags && (etype == 0x8100 || etype == 0x88a8); i++ {
		if len(f) < off+4 {
			return p, verdict.TruncVLAN, false
		}
		if i == 0 {
			p.Key.VLAN = binary.BigEndian.Uint16(f[off:]) & 0x0fff
		}
		etype = binary.BigEndian.Uint16(f[off+2:])
		off += 4
	}
	switch etype {
	case 0x8100, 0x88a8:
		return p, verdict.VLANDepth, false
	case 0x0800:
		return parseIPv4(f, off, p)
	case 0x86dd:
		return parseIPv6(f, off, p)
	}
	return p, verdict.NotIP, false
}

// ParseIP parses a bare IPv4 or IPv6 packet, as read from a TUN device.
func ParseIP(b []byte) (Packet, verdict.Reason, bool) {
	if len(b) == 0 {
		return Packet{}, verdict.TruncIPv4, false
	}
	switch b[0] >> 4 {
	case 4:
		return parseIPv4(b, 0, Packet{})
	case 6:
		return parseIPv6(b, 0, Packet{})
	}
	return Packet{}, verdict.NotIP, false
}

func parseIPv4(f []byte, off int, p Packet) (Packet, verdict.Reason, bool) {
	if len(f) < off+20 {
		return p, verdict.TruncIPv4, false
	}
	ip := f[off:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 {
		return p, verdict.BadIPv4, false
	}
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if tot < ihl {
		return p, verdict.BadIPv4, false
	}
	if len(ip) < tot {
		return p, verdict.TruncIPv4, false
	}
	p.Key.Src = mapped(ip[12:16])
	p.Key.Dst = mapped(ip[16:20])
	frag := binary.BigEndian.Uint16(ip[6:])
	switch {
	case frag&0x1fff != 0:
		p.Frag = LaterFragment
	case frag&0x2000 != 0:
		p.Frag = FirstFragment
	}
	return l4(f, off+ihl, ip[9], p)
}

func parseIPv6(f []byte, off int, p Packet) (Packet, verdict.Reason, bool) {
	if len(f) < off+40 {
		return p, verdict.TruncIPv6, false
	}
	ip := f[off:]
	if ip[0]>>4 != 6 {
		return p, verdict.BadIPv6, false
	}
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	if plen == 0 { // jumbograms are not supported
		return p, verdict.BadIPv6, false
	}
	if len(ip) < 40+plen {
		return p, verdict.TruncIPv6, false
	}
	copy(p.Key.Src[:], ip[8:24])
	copy(p.Key.Dst[:], ip[24:40])
	p.IPv6 = true
	proto := ip[6]
	l4off := off + 40
	for i := 0; i < MaxExtHdrs && isExt(proto); i++ {
		if l4off > MaxL4Offset || len(f) < l4off+8 {
			return p, verdict.BadIPv6Ext, false
		}
		h := f[l4off:]
		var n int
		switch proto {
		case ProtoFragment:
			n = 8
			fo := binary.BigEndian.Uint16(h[2:])
			switch {
			case fo&0xfff8 != 0:
				p.Frag = LaterFragment
			case fo&1 != 0:
				p.Frag = FirstFragment
			}
		case ProtoAH:
			n = (int(h[1]) + 2) * 4
		default:
			n = (int(h[1]) + 1) * 8
		}
		proto = h[0]
		l4off += n
		if p.Frag == LaterFragment {
			break
		}
	}
	if p.Frag != LaterFragment && isExt(proto) {
		return p, verdict.BadIPv6Ext, false
	}
	return l4(f, l4off, proto, p)
}

func l4(f []byte, off int, proto uint8, p Packet) (Packet, verdict.Reason, bool) {
	p.Key.Proto = proto
	if p.Frag == LaterFragment {
		return p, 0, true
	}
	if off > MaxL4Offset {
		return p, verdict.TruncL4, false
	}
	need := 0
	switch proto {
	case ProtoTCP:
		need = 20
	case ProtoUDP, ProtoICMP, ProtoICMPv6:
		need = 8
	}
	if len(f) < off+need {
		return p, verdict.TruncL4, false
	}
	if proto == ProtoTCP || proto == ProtoUDP {
		p.Key.Sport = binary.BigEndian.Uint16(f[off:])
		p.Key.Dport = binary.BigEndian.Uint16(f[off+2:])
	}
	return p, 0, true
}
