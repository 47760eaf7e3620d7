package loader

import (
	"net/netip"
	"testing"

	"github.com/xwan-dev/xwan/userspace/policy/policytest"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// TestWANGuard: only allowed peers reach the tunnel port; everything else
// on the link is untouched.
func TestWANGuard(t *testing.T) {
	d := openTest(t)
	const port = 4754
	if err := d.SetTunnelPort(port); err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("198.18.103.2")
	if err := d.AllowPeer(netip.AddrPortFrom(peer, 0), 3); err != nil {
		t.Fatal(err)
	}
	exact := netip.MustParseAddrPort("[2001:db8:103::2]:5000")
	if err := d.AllowPeer(exact, 4); err != nil {
		t.Fatal(err)
	}
	me := netip.MustParseAddr("198.18.101.2")
	me6 := netip.MustParseAddr("2001:db8:101::2")
	udp := func(src, dst netip.Addr, sport, dport uint16) []byte {
		return (&policytest.Frame{Src: src, Dst: dst, Proto: 17, Sport: sport, Dport: dport, Payload: []byte{23, 0xfe, 0xfd}}).Bytes()
	}
	tests := []struct {
		name   string
		frame  []byte
		action verdict.Action
		reason int
	}{
		{"known peer, any port", udp(peer, me, 40000, port), verdict.Pass, WANPeer},
		{"unknown peer", udp(netip.MustParseAddr("198.18.66.6"), me, 40000, port), verdict.Drop, WANUnknownPeer},
		{"known v6 endpoint", udp(exact.Addr(), me6, 5000, port), verdict.Pass, WANPeer},
		{"v6 address, other port", udp(exact.Addr(), me6, 5001, port), verdict.Drop, WANUnknownPeer},
		{"other port", udp(netip.MustParseAddr("198.18.66.6"), me, 53, 53), verdict.Pass, WANOther},
		{"tcp", (&policytest.Frame{Src: peer, Dst: me, Proto: 6, Sport: 1, Dport: port}).Bytes(), verdict.Pass, WANOther},
		{"later fragment", (&policytest.Frame{Src: netip.MustParseAddr("198.18.66.6"), Dst: me, Proto: 17, FragOff: 5, NoL4Header: true, Payload: make([]byte, 8)}).Bytes(), verdict.Pass, WANFragment},
		{"garbage", append(make([]byte, 12), 0x08, 0x00, 0x45), verdict.Pass, WANOther},
	}
	for _, tc := range tests {
		before, err := d.WANStats()
		if err != nil {
			t.Fatal(err)
		}
		act, meta, err := testRun(d.wan.XdpWan, tc.frame)
		if err != nil {
			t.Fatal(err)
		}
		after, err := d.WANStats()
		if err != nil {
			t.Fatal(err)
		}
		if act != tc.action || meta != nil {
			t.Errorf("%s: %s (meta %v), want %s", tc.name, act, meta, tc.action)
		}
		if after[tc.reason].Packets != before[tc.reason].Packets+1 {
			t.Errorf("%s: reason %d not counted", tc.name, tc.reason)
		}
	}
	// Port 0 turns the guard off.
	if err := d.SetTunnelPort(0); err != nil {
		t.Fatal(err)
	}
	if act, _, _ := testRun(d.wan.XdpWan, udp(netip.MustParseAddr("198.18.66.6"), me, 1, port)); act != verdict.Pass {
		t.Fatalf("guard off: %s", act)
	}
	peers, err := d.AllowedPeers()
	if err != nil || peers[netip.AddrPortFrom(peer, 0)] != 3 || peers[exact] != 4 {
		t.Fatalf("allowed peers %v %v", peers, err)
	}
}
