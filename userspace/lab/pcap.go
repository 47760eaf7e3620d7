package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// UDPPacket is one UDP datagram read from a capture.
type UDPPacket struct {
	Sport, Dport uint16
	Payload      []byte
}

// ReadPcapUDP returns the IPv4 UDP datagrams of a classic pcap file
// (Ethernet, Linux cooked v1 or v2 link types, as tcpdump writes them).
func ReadPcapUDP(b []byte) ([]UDPPacket, error) {
	if len(b) < 24 {
		return nil, errors.New("pcap: short file")
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, errors.New("pcap: not a pcap file")
	}
	linkType := bo.Uint32(b[20:])
	var out []UDPPacket
	for off := 24; off+16 <= len(b); {
		incl := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+incl > len(b) {
			break
		}
		frame := b[off : off+incl]
		off += incl
		var etype uint16
		var ip []byte
		switch linkType {
		case 1: // Ethernet
			if len(frame) < 14 {
				continue
			}
			etype, ip = binary.BigEndian.Uint16(frame[12:]), frame[14:]
		case 113: // Linux cooked v1
			if len(frame) < 16 {
				continue
			}
			etype, ip = binary.BigEndian.Uint16(frame[14:]), frame[16:]
		case 276: // Linux cooked v2
			if len(frame) < 20 {
				continue
			}
			etype, ip = binary.BigEndian.Uint16(frame[0:]), frame[20:]
		default:
			return nil, fmt.Errorf("pcap: link type %d not supported", linkType)
		}
		if etype != 0x0800 || len(ip) < 20 || ip[9] != 17 {
			continue
		}
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		out = append(out, UDPPacket{Sport: binary.BigEndian.Uint16(udp), Dport: binary.BigEndian.Uint16(udp[2:]), Payload: udp[8:]})
	}
	return out, nil
}
