package xsk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xwan-dev/xwan/loader"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/policy/policytest"
	"github.com/xwan-dev/xwan/userspace/testenv"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// The lab: namespace gw holds lan0 (198.18.0.1/24) with the LAN program;
// namespace host (eth0, 198.18.0.2/24) routes 198.18.20.0/24 via the
// gateway. 198.18.20.0/24 is site s2, reached off-cloud on path 3.
var (
	remoteDst = netip.MustParseAddr("198.18.20.5")
	gwAddr    = netip.MustParseAddr("198.18.0.1")
	hostAddr  = netip.MustParseAddr("198.18.0.2")
)

const (
	remotePort = 7000
	gwPort     = 7001
	wantPath   = 3
	wantSite   = 2
	wantRule   = 1 // rule 0 is a decoy (TCP, dropped)
)

type lab struct {
	gw, host *testenv.Netns
	d        *loader.Datapath
	ifindex  int
	queues   int
	gen      uint32
	conn     *net.UDPConn // in host, to remoteDst:remotePort
}

func newLab(t testing.TB) *lab {
	t.Helper()
	testenv.RequireRoot(t)
	l := &lab{
		gw:   testenv.NewNetns(t, "xkgw"),
		host: testenv.NewNetns(t, "xkho"),
	}
	testenv.Link(t, l.gw, "lan0", gwAddr.String()+"/24", l.host, "eth0", hostAddr.String()+"/24")
	l.host.MustRun(t, "ip", "route", "add", "198.18.20.0/24", "via", gwAddr.String())

	root := filepath.Join("/sys/fs/bpf", testenv.UniqueName("xwan-xsk-"))
	t.Cleanup(func() {
		if err := loader.Cleanup(root); err != nil {
			t.Errorf("loader cleanup: %v", err)
		}
		_ = os.RemoveAll(root)
	})
	d, err := loader.Open(loader.Options{PinRoot: root, FlowTableSize: 4096})
	if err != nil {
		testenv.Unavailable(t, "loading the LAN program: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	l.d = d

	err = l.gw.Do(func() error {
		mode, err := d.Attach("lan0")
		if err != nil {
			return err
		}
		ifc, err := net.InterfaceByName("lan0")
		if err != nil {
			return err
		}
		l.ifindex = ifc.Index
		l.queues, err = QueueCount("lan0")
		if err != nil {
			return err
		}
		t.Logf("LAN program attached to lan0 (ifindex %d) in %s mode; lan0 has %d RX queue(s)", l.ifindex, mode, l.queues)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.program(t)

	// Resolve the gateway's MAC first, or the first burst waits in the
	// host's ARP queue, which holds only a few packets.
	l.host.MustRun(t, "ping", "-c", "1", "-W", "5", gwAddr.String())

	l.conn = l.dial(t, remoteDst, remotePort)
	return l
}

// program installs: 198.18.20.0/24 is site 2 (mesh), path 3 to site 2 is
// up and is every slot of site 2's table, and the rules send UDP to s2
// off-cloud (rule 1) after a decoy rule for TCP (rule 0).
func (l *lab) program(t testing.TB) {
	t.Helper()
	d := l.d
	if err := d.SetDest(netip.MustParsePrefix("198.18.20.0/24"), policy.Dest{Site: wantSite, Kind: policy.DestMesh}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetSettings(policy.Settings{LocalSite: 1, HubSite: 5}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPath(wantPath, loader.PathInfo{State: loader.PathUp, LinkId: 1, SiteId: wantSite}); err != nil {
		t.Fatal(err)
	}
	slots := make([]uint16, policy.MaglevSlots)
	for i := range slots {
		slots[i] = wantPath
	}
	if err := d.SetSiteTable(wantSite, 0, slots); err != nil {
		t.Fatal(err)
	}
	rs := &policy.RuleSet{
		Rules: []policy.Rule{
			{Name: "decoy-tcp", Proto: 6, Dst: policy.Endpoint{Site: "s2"}, Action: policy.Action{Transport: policy.Drop}},
			{Name: "udp-to-s2", Proto: 17, Dst: policy.Endpoint{Site: "s2"}, Action: policy.Action{Transport: policy.OffCloud, Secondary: policy.NoSecondary}},
		},
		Default: policy.Action{Transport: policy.Drop},
	}
	c, err := policy.Compile(rs, policytest.Topology())
	if err != nil {
		t.Fatal(err)
	}
	if l.gen, err = d.ApplyRules(c); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) wantMeta() verdict.Meta {
	return verdict.Meta{Generation: l.gen, RuleID: wantRule, PathID: wantPath, SiteID: wantSite, Transport: uint8(policy.OffCloud)}
}

// dial makes a UDP socket in the host namespace connected to dst:port.
func (l *lab) dial(t testing.TB, dst netip.Addr, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := l.host.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port))))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// open opens and registers one socket per RX queue of lan0, closed at the
// end of the test.
func (l *lab) open(t testing.TB, cfg Config) []*Socket {
	t.Helper()
	var socks []*Socket
	err := l.gw.Do(func() error {
		for q := 0; q < l.queues; q++ {
			c := cfg
			c.Ifindex, c.Queue = l.ifindex, q
			s, err := Open(c)
			if err != nil {
				return err
			}
			socks = append(socks, s)
		}
		return nil
	})
	t.Cleanup(func() {
		for _, s := range socks {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range socks {
		if err := s.Register(l.d.XSKMap()); err != nil {
			t.Fatal(err)
		}
	}
	return socks
}

func (l *lab) reasons(t testing.TB) []loader.Counter {
	t.Helper()
	r, err := l.d.ReasonStats()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// payload is datagram seq's content: a header naming it, then bytes that
// depend on seq, 16 to 1400 bytes in all.
func payload(seq int) []byte {
	n := 16 + (seq*97)%1385
	b := make([]byte, n)
	copy(b, fmt.Sprintf("xsk%08d", seq))
	for i := 11; i < n; i++ {
		b[i] = byte(seq*31 + i*7)
	}
	return b
}

func seqOf(p []byte) (int, bool) {
	var seq int
	if len(p) < 11 || !bytes.HasPrefix(p, []byte("xsk")) {
		return 0, false
	}
	if _, err := fmt.Sscanf(string(p[3:11]), "%08d", &seq); err != nil {
		return 0, false
	}
	return seq, true
}

func send(t testing.TB, c *net.UDPConn, from, to int) {
	t.Helper()
	for seq := from; seq < to; seq++ {
		if _, err := c.Write(payload(seq)); err != nil {
			t.Fatalf("sending datagram %d: %v", seq, err)
		}
	}
}

// udp is what a test reads from a received frame.
type udp struct {
	src, dst     netip.Addr
	sport, dport uint16
	payload      []byte
	checksumOK   bool
	// checksumPartial: the field holds only the pseudo-header sum, as a
	// sender with checksum offload (CHECKSUM_PARTIAL) leaves it.
	checksumPartial bool
}

// parseUDP reads an untagged Ethernet/IPv4/UDP frame.
func parseUDP(f []byte) (udp, error) {
	var u udp
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return u, fmt.Errorf("not IPv4 over Ethernet: % x", f[:min(len(f), 34)])
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[9] != 17 || ihl < 20 || total > len(ip) || total < ihl+8 {
		return u, fmt.Errorf("not a whole UDP datagram (proto %d, ihl %d, total %d, have %d)", ip[9], ihl, total, len(ip))
	}
	u.src = netip.AddrFrom4([4]byte(ip[12:16]))
	u.dst = netip.AddrFrom4([4]byte(ip[16:20]))
	seg := ip[ihl:total]
	u.sport = binary.BigEndian.Uint16(seg)
	u.dport = binary.BigEndian.Uint16(seg[2:])
	if int(binary.BigEndian.Uint16(seg[4:])) != len(seg) {
		return u, fmt.Errorf("UDP length %d, IP says %d", binary.BigEndian.Uint16(seg[4:]), len(seg))
	}
	u.payload = seg[8:]
	// The one's complement sum over pseudo-header and segment is 0xffff
	// when the checksum is right.
	sum := uint32(0)
	fold := func() uint16 {
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		return uint16(sum)
	}
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(ip[12:20])
	sum += 17 + uint32(len(seg))
	u.checksumPartial = fold() == binary.BigEndian.Uint16(seg[6:])
	add(seg)
	u.checksumOK = fold() == 0xffff
	return u, nil
}

// pollAll waits up to d for any of the sockets to have frames.
func pollAll(t testing.TB, socks []*Socket, d time.Duration) {
	t.Helper()
	pfds := make([]unix.PollFd, len(socks))
	for i, s := range socks {
		pfds[i] = unix.PollFd{Fd: int32(s.FD()), Events: unix.POLLIN}
	}
	if _, err := unix.Poll(pfds, int(d/time.Millisecond)+1); err != nil && err != unix.EINTR {
		t.Fatal(err)
	}
}

// collect receives from all sockets until want frames arrived or timeout
// passed, calls fn on each frame and releases it unless hold is set (then
// the frames are appended to *held). It returns how many arrived.
func collect(t testing.TB, socks []*Socket, want int, timeout time.Duration, fn func(i int, s *Socket, f *Frame), held *[][]Frame) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	batch := make([]Frame, 64)
	got := 0
	for got < want {
		any := false
		for i, s := range socks {
			n, err := s.Receive(batch, 0)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				continue
			}
			any = true
			got += n
			for j := range batch[:n] {
				if fn != nil {
					fn(i, s, &batch[j])
				}
			}
			if held != nil {
				(*held)[i] = append((*held)[i], batch[:n]...)
			} else {
				s.Release(batch[:n])
			}
		}
		if any {
			continue
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		pollAll(t, socks, min(left, 50*time.Millisecond))
	}
	return got
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s: %s", timeout, what, state)
		}
		<-tick.C
	}
}
