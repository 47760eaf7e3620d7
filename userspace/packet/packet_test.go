package packet_test

import (
	"net/netip"
	"testing"

	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/policy/policytest"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

var (
	v4a = netip.MustParseAddr("198.18.1.1")
	v4b = netip.MustParseAddr("198.18.2.2")
	v6a = netip.MustParseAddr("2001:db8:1::1")
	v6b = netip.MustParseAddr("2001:db8:2::2")
)

// Fixtures in the style of katran's: frame in, expected parse out.
func TestParseFixtures(t *testing.T) {
	tcp := func(f policytest.Frame) []byte { f.Proto = 6; return f.Bytes() }
	tests := []struct {
		name   string
		frame  []byte
		ok     bool
		reason verdict.Reason
		key    packet.Key
		frag   packet.Fragment
	}{
		{"tcp4", tcp(policytest.Frame{Src: v4a, Dst: v4b, Sport: 1234, Dport: 443}), true, 0,
			packet.Key{Src: v4a.As16(), Dst: v4b.As16(), Sport: 1234, Dport: 443, Proto: 6}, 0},
		{"two vlans, inner ignored", tcp(policytest.Frame{VLANs: []uint16{100, 200}, Src: v4a, Dst: v4b, Sport: 1, Dport: 2}), true, 0,
			packet.Key{Src: v4a.As16(), Dst: v4b.As16(), Sport: 1, Dport: 2, Proto: 6, VLAN: 100}, 0},
		{"three vlans", tcp(policytest.Frame{VLANs: []uint16{1, 2, 3}, Src: v4a, Dst: v4b}), false, verdict.VLANDepth, packet.Key{}, 0},
		{"ipv4 options", (&policytest.Frame{Src: v4a, Dst: v4b, Proto: 17, Sport: 53, Dport: 5353, IPv4Opts: 40}).Bytes(), true, 0,
			packet.Key{Src: v4a.As16(), Dst: v4b.As16(), Sport: 53, Dport: 5353, Proto: 17}, 0},
		{"first fragment has ports", (&policytest.Frame{Src: v4a, Dst: v4b, Proto: 17, Sport: 7, Dport: 8, MoreFrags: true}).Bytes(), true, 0,
			packet.Key{Src: v4a.As16(), Dst: v4b.As16(), Sport: 7, Dport: 8, Proto: 17}, packet.FirstFragment},
		{"later fragment has none", (&policytest.Frame{Src: v4a, Dst: v4b, Proto: 17, FragOff: 10, NoL4Header: true, Payload: make([]byte, 16)}).Bytes(), true, 0,
			packet.Key{Src: v4a.As16(), Dst: v4b.As16(), Proto: 17}, packet.LaterFragment},
		{"ipv6 ext headers", (&policytest.Frame{Src: v6a, Dst: v6b, Proto: 6, Sport: 9, Dport: 10, Ext: []policytest.Ext{{Type: 0}, {Type: 43, Len: 2}, {Type: 51, Len: 1}, {Type: 60}}}).Bytes(), true, 0,
			packet.Key{Src: v6a.As16(), Dst: v6b.As16(), Sport: 9, Dport: 10, Proto: 6}, 0},
		{"ipv6 later fragment", (&policytest.Frame{Src: v6a, Dst: v6b, Proto: 17, NoL4Header: true, Payload: make([]byte, 8), Ext: []policytest.Ext{{Type: 44, FragOff: 3}}}).Bytes(), true, 0,
			packet.Key{Src: v6a.As16(), Dst: v6b.As16(), Proto: 17}, packet.LaterFragment},
		{"seven ext headers", (&policytest.Frame{Src: v6a, Dst: v6b, Proto: 6, Ext: make([]policytest.Ext, 7)}).Bytes(), false, verdict.BadIPv6Ext, packet.Key{}, 0},
		{"icmp6", (&policytest.Frame{Src: v6a, Dst: v6b, Proto: 58}).Bytes(), true, 0,
			packet.Key{Src: v6a.As16(), Dst: v6b.As16(), Proto: 58}, 0},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 1), false, verdict.NotIP, packet.Key{}, 0},
		{"short", make([]byte, 13), false, verdict.TruncEth, packet.Key{}, 0},
		{"tcp header cut", tcp(policytest.Frame{Src: v4a, Dst: v4b})[:14+20+10], false, verdict.TruncIPv4, packet.Key{}, 0},
		{"no tcp header", (&policytest.Frame{Src: v4a, Dst: v4b, Proto: 6, NoL4Header: true}).Bytes(), false, verdict.TruncL4, packet.Key{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, reason, ok := packet.ParseEthernet(tc.frame)
			if ok != tc.ok || (!ok && reason != tc.reason) {
				t.Fatalf("ok=%v reason=%s, want ok=%v reason=%s", ok, reason, tc.ok, tc.reason)
			}
			if ok && (p.Key != tc.key || p.Frag != tc.frag) {
				t.Fatalf("got %+v frag %d\nwant %+v frag %d", p.Key, p.Frag, tc.key, tc.frag)
			}
		})
	}
}

func TestBadHeaders(t *testing.T) {
	f := (&policytest.Frame{Src: v4a, Dst: v4b, Proto: 17}).Bytes()
	f[14] = 0x44 // IHL 4
	if _, r, _ := packet.ParseEthernet(f); r != verdict.BadIPv4 {
		t.Fatalf("ihl 4: %s", r)
	}
	g := (&policytest.Frame{Src: v6a, Dst: v6b, Proto: 17}).Bytes()
	g[18], g[19] = 0, 0 // payload length 0 (jumbogram)
	if _, r, _ := packet.ParseEthernet(g); r != verdict.BadIPv6 {
		t.Fatalf("jumbo: %s", r)
	}
}

func TestParseIPMatchesEthernet(t *testing.T) {
	f := (&policytest.Frame{Src: v6a, Dst: v6b, Proto: 17, Sport: 5, Dport: 6}).Bytes()
	pe, _, ok1 := packet.ParseEthernet(f)
	pi, _, ok2 := packet.ParseIP(f[14:])
	if !ok1 || !ok2 || pe != pi {
		t.Fatalf("ethernet %+v, ip %+v", pe, pi)
	}
}

func TestHashIsStable(t *testing.T) {
	// The kernel computes the same value; a change here moves every flow.
	k := packet.Key{Src: v4a.As16(), Dst: v4b.As16(), Sport: 1, Dport: 2, Proto: 6}
	if h := k.Hash(); h != k.Hash() || h == (packet.Key{}).Hash() {
		t.Fatalf("hash %x", h)
	}
}

// FuzzParseEthernet: never panics, and what it reports is consistent.
func FuzzParseEthernet(f *testing.F) {
	f.Add((&policytest.Frame{Src: v4a, Dst: v4b, Proto: 6, Sport: 1, Dport: 2, VLANs: []uint16{5}}).Bytes())
	f.Add((&policytest.Frame{Src: v6a, Dst: v6b, Proto: 17, Ext: []policytest.Ext{{Type: 44, FragOff: 1}}, NoL4Header: true}).Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, reason, ok := packet.ParseEthernet(b)
		if !ok {
			if reason >= verdict.NumReasons {
				t.Fatalf("reason %d", reason)
			}
			return
		}
		if p.Key.VLAN > 0xfff {
			t.Fatalf("vlan %d", p.Key.VLAN)
		}
		if p.Frag == packet.LaterFragment && (p.Key.Sport|p.Key.Dport) != 0 {
			t.Fatalf("later fragment with ports: %+v", p)
		}
		if !p.IPv6 && !netip.AddrFrom16(p.Key.Src).Is4In6() {
			t.Fatalf("IPv4 source not mapped: %+v", p)
		}
	})
}
