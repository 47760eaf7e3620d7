// Package policytest builds frames, topologies and random rule sets for the
// tests and benchmarks of the classifier (the differential test against the
// kernel, fuzzing and make bench-classifier).
package policytest

import (
	"encoding/binary"
	"net/netip"
)

// Ext is an IPv6 extension header to put before the L4 header.
type Ext struct {
	Type    uint8 // 0, 43, 44, 51 or 60
	Len     uint8 // the header's length field
	FragOff uint16
	More    bool
}

// Frame describes an Ethernet frame to build.
type Frame struct {
	VLANs      []uint16 // outer first; each becomes an 802.1Q tag
	Src, Dst   netip.Addr
	Proto      uint8
	Sport      uint16
	Dport      uint16
	IPv4Opts   int    // bytes of IPv4 options (multiple of 4, <= 40)
	FragOff    uint16 // IPv4 fragment offset in 8-byte units
	MoreFrags  bool   // IPv4 MF
	Ext        []Ext  // IPv6 extension headers
	Payload    []byte // after the L4 header
	NoL4Header bool   // leave the L4 header out (later fragments)
}

func l4Header(f *Frame) []byte {
	if f.NoL4Header {
		return nil
	}
	switch f.Proto {
	case 6:
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h, f.Sport)
		binary.BigEndian.PutUint16(h[2:], f.Dport)
		h[12] = 5 << 4
		h[13] = 0x02 // SYN
		return h
	case 17:
		h := make([]byte, 8)
		binary.BigEndian.PutUint16(h, f.Sport)
		binary.BigEndian.PutUint16(h[2:], f.Dport)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(f.Payload)))
		return h
	case 1, 58:
		return []byte{8, 0, 0, 0, 0, 1, 0, 1} // echo request
	}
	return nil
}

// Bytes builds the frame. Checksums are left zero: the classifier does not
// look at them.
func (f *Frame) Bytes() []byte {
	b := []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1}
	etype := uint16(0x0800)
	if f.Src.Is6() && !f.Src.Is4In6() {
		etype = 0x86dd
	}
	for _, v := range f.VLANs {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, v&0x0fff)
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	l4 := append(l4Header(f), f.Payload...)
	if etype == 0x0800 {
		ihl := 20 + f.IPv4Opts
		ip := make([]byte, ihl)
		ip[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(ip[2:], uint16(ihl+len(l4)))
		fo := f.FragOff & 0x1fff
		if f.MoreFrags {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:], fo)
		ip[8] = 64
		ip[9] = f.Proto
		s4, d4 := f.Src.As4(), f.Dst.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		for i := 20; i < ihl; i++ {
			ip[i] = 1 // NOP options
		}
		return append(append(b, ip...), l4...)
	}
	var ext []byte
	next := f.Proto
	for i := len(f.Ext) - 1; i >= 0; i-- {
		e := f.Ext[i]
		var h []byte
		switch e.Type {
		case 44:
			h = make([]byte, 8)
			fo := e.FragOff << 3
			if e.More {
				fo |= 1
			}
			binary.BigEndian.PutUint16(h[2:], fo)
		case 51:
			h = make([]byte, (int(e.Len)+2)*4)
			h[1] = e.Len
		default:
			h = make([]byte, (int(e.Len)+1)*8)
			h[1] = e.Len
		}
		h[0] = next
		next = e.Type
		ext = append(h, ext...)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+len(l4)))
	ip[6] = next
	ip[7] = 64
	s16, d16 := f.Src.As16(), f.Dst.As16()
	copy(ip[8:], s16[:])
	copy(ip[24:], d16[:])
	return append(append(append(b, ip...), ext...), l4...)
}
