package gateway

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xwan-dev/xwan/userspace/policy/policytest"
)

// tcpChecksumOK verifies an IPv4 TCP segment's checksum.
func tcpChecksumOK(ip []byte) bool {
	ihl := int(ip[0]&0x0f) * 4
	tcp := ip[ihl:]
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum += 6 + uint32(len(tcp))
	return checksum(tcp, sum) == 0
}

func synWithMSS(mss uint16) []byte {
	f := (&policytest.Frame{Src: netip.MustParseAddr("198.18.1.1"), Dst: netip.MustParseAddr("198.18.2.2"), Proto: 6, Sport: 1, Dport: 2}).Bytes()
	ip := f[14:]
	// Rebuild the TCP header with an MSS option (data offset 6).
	tcp := append([]byte{}, ip[20:40]...)
	tcp[12] = 6 << 4
	tcp = append(tcp, 2, 4, byte(mss>>8), byte(mss))
	ip = append(ip[:20:20], tcp...)
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum += 6 + uint32(len(tcp))
	binary.BigEndian.PutUint16(ip[20+16:], checksum(ip[20:], sum))
	return ip
}

func TestClampMSS(t *testing.T) {
	ip := synWithMSS(1460)
	if !tcpChecksumOK(ip) {
		t.Fatal("test packet has a bad checksum")
	}
	if !clampMSS(ip, 1350) {
		t.Fatal("MSS not clamped")
	}
	if got := binary.BigEndian.Uint16(ip[20+22:]); got != 1350 {
		t.Fatalf("MSS %d", got)
	}
	if !tcpChecksumOK(ip) {
		t.Fatal("checksum wrong after clamping")
	}
	if clampMSS(synWithMSS(1200), 1350) {
		t.Fatal("a smaller MSS was changed")
	}
}

func TestTooBig(t *testing.T) {
	orig := (&policytest.Frame{Src: netip.MustParseAddr("198.18.10.10"), Dst: netip.MustParseAddr("198.18.20.10"), Proto: 17, Sport: 5, Dport: 6, Payload: make([]byte, 1400)}).Bytes()[14:]
	icmp, dst := tooBig(orig, 1400)
	if icmp == nil || icmp[0] != 3 || icmp[1] != 4 || binary.BigEndian.Uint16(icmp[6:]) != 1400 || len(icmp) != 8+28 {
		t.Fatalf("bad ICMP % x", icmp)
	}
	if checksum(icmp, 0) != 0 {
		t.Fatal("bad checksum")
	}
	if dst != netip.MustParseAddr("198.18.10.10") {
		t.Fatalf("sent to %s, not back to the sender", dst)
	}
	errPkt := (&policytest.Frame{Src: netip.MustParseAddr("198.18.10.10"), Dst: netip.MustParseAddr("198.18.20.10"), Proto: 1}).Bytes()[14:]
	errPkt[20] = 3 // an ICMP error itself
	if m, _ := tooBig(errPkt, 1400); m != nil {
		t.Fatal("answered an ICMP error with an ICMP error")
	}
	orig6 := (&policytest.Frame{Src: netip.MustParseAddr("2001:db8:10::10"), Dst: netip.MustParseAddr("2001:db8:20::10"), Proto: 17, Payload: make([]byte, 1400)}).Bytes()[14:]
	p, dst6 := tooBig(orig6, 1400)
	if p == nil || p[0] != 2 || binary.BigEndian.Uint32(p[4:]) != 1400 || len(p)+40 > 1280 || dst6 != netip.MustParseAddr("2001:db8:10::10") {
		t.Fatalf("bad ICMPv6 (len %d)", len(p))
	}
}
