package xsk

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xwan-dev/xwan/userspace/verdict"
)

// TestConfig checks defaults and refusals; it needs no privileges.
func TestConfig(t *testing.T) {
	c, err := Config{Ifindex: 1}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Frames != DefaultFrames || c.FrameSize != DefaultFrameSize || c.RingSize != DefaultRingSize || c.Mode != ModeAuto {
		t.Fatalf("defaults: %+v", c)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "interface index 0"},
		{Config{Ifindex: 1, Queue: -1}, "queue -1"},
		{Config{Ifindex: 1, Frames: 1000}, "1000 frames"},
		{Config{Ifindex: 1, FrameSize: 1024}, "frame size 1024"},
		{Config{Ifindex: 1, FrameSize: 3000}, "frame size 3000"},
		{Config{Ifindex: 1, FrameSize: 1 << 20}, "frame size 1048576"},
		{Config{Ifindex: 1, RingSize: 100}, "ring size 100"},
		{Config{Ifindex: 1, Mode: 9}, "unknown mode"},
	} {
		_, err := Open(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want an error about %q", tc.cfg, err, tc.want)
		}
	}
}

// TestReceiveWithMetadata sends UDP datagrams from the host to a remote
// site through lan0. Each must arrive, once, on the socket of its RX queue
// with the LAN program's decision right before it (copy mode on veth: the
// kernel copied the metadata too), its bytes intact, and the program must
// have counted each as a redirect.
func TestReceiveWithMetadata(t *testing.T) {
	l := newLab(t)
	socks := l.open(t, Config{NeedWakeup: true})
	for _, s := range socks {
		if s.Mode() != ModeCopy {
			t.Errorf("queue %d: veth bound in %s mode, want copy (veth has no zero-copy)", s.Queue(), s.Mode())
		}
	}
	before := l.reasons(t)

	const total, burst = 600, 50
	want := l.wantMeta()
	seen := make(map[int]bool)
	perQueue := make([]int, len(socks))
	var hits, misses, csumOK, csumPartial, csumBad int
	check := func(i int, s *Socket, f *Frame) {
		if off := f.addr & (DefaultFrameSize - 1); off != unix.XDP_PACKET_HEADROOM {
			t.Errorf("frame at offset %d of its chunk, want XDP_PACKET_HEADROOM (%d) with UMEM headroom 0", off, unix.XDP_PACKET_HEADROOM)
		}
		if !f.HasMeta {
			t.Fatalf("frame without metadata; the %d bytes before it: % x", verdict.MetaLen, s.umem[f.addr-verdict.MetaLen:f.addr])
		}
		// Receive clears the magic so a later frame in this chunk cannot
		// show stale metadata.
		if m := s.umem[f.addr-verdict.MetaLen : f.addr-verdict.MetaLen+4]; !bytes.Equal(m, []byte{0, 0, 0, 0}) {
			t.Errorf("magic left in the UMEM after Receive: % x", m)
		}
		got := f.Meta
		if got.Flags&verdict.FlagFlowHit != 0 {
			hits++
		} else {
			misses++
		}
		got.Flags &^= verdict.FlagFlowHit
		if got != want {
			t.Errorf("metadata %+v, want %+v", f.Meta, want)
		}
		u, err := parseUDP(f.Data)
		if err != nil {
			t.Fatal(err)
		}
		if u.src != hostAddr || u.dst != remoteDst || u.dport != remotePort {
			t.Errorf("datagram %s:%d -> %s:%d, want from %s to %s:%d", u.src, u.sport, u.dst, u.dport, hostAddr, remoteDst, remotePort)
		}
		seq, ok := seqOf(u.payload)
		if !ok {
			t.Fatalf("payload %q is not one of ours", u.payload[:min(len(u.payload), 16)])
		}
		if !bytes.Equal(u.payload, payload(seq)) {
			t.Errorf("datagram %d: payload of %d bytes differs from the %d sent", seq, len(u.payload), len(payload(seq)))
		}
		if seen[seq] {
			t.Errorf("datagram %d received twice", seq)
		}
		seen[seq] = true
		perQueue[i]++
		switch {
		case u.checksumOK:
			csumOK++
		case u.checksumPartial:
			csumPartial++
		default:
			csumBad++
		}
	}
	for from := 0; from < total; from += burst {
		send(t, l.conn, from, from+burst)
		if got := collect(t, socks, burst, 10*time.Second, check, nil); got != burst {
			t.Fatalf("burst from %d: received %d of %d datagrams", from, got, burst)
		}
	}
	if len(seen) != total {
		t.Fatalf("received %d distinct datagrams, want %d", len(seen), total)
	}
	if misses == 0 || hits == 0 {
		t.Errorf("%d flow-cache hits, %d misses: want the first packet classified and the rest from the cache", hits, misses)
	}
	after := l.reasons(t)
	if got := after[verdict.Redirect].Packets - before[verdict.Redirect].Packets; got != total {
		t.Errorf("stats_reasons counted %d redirects, want %d", got, total)
	}
	if got := after[verdict.NoXSK].Packets - before[verdict.NoXSK].Packets; got != 0 {
		t.Errorf("%d frames counted no_xsk with every queue registered", got)
	}
	for _, s := range socks {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.RxDropped != 0 || st.RxRingFull != 0 || st.RxInvalidDescs != 0 || st.BadDescs != 0 {
			t.Errorf("queue %d lost frames: %+v", s.Queue(), st)
		}
		if s.Held() != 0 {
			t.Errorf("queue %d holds %d frames after releasing all", s.Queue(), s.Held())
		}
	}
	// A veth peer's kernel leaves the checksum to "hardware" that does not
	// exist; XDP and AF_XDP see the frame before anyone completes it.
	t.Logf("%d datagrams per queue %v; %d flow-cache hits, %d misses; UDP checksum complete in %d, pseudo-header only (CHECKSUM_PARTIAL) in %d, other in %d",
		total, perQueue, hits, misses, csumOK, csumPartial, csumBad)
}

// TestUnknownDestinationPassesToKernel: a datagram to a destination the LAN
// program has no entry for (here the gateway itself) is passed to the
// kernel, which delivers it to a UDP socket in the gateway, and never shows
// up on an AF_XDP socket. Tunnel traffic sent afterwards still does, so the
// sockets were listening all along.
func TestUnknownDestinationPassesToKernel(t *testing.T) {
	l := newLab(t)
	socks := l.open(t, Config{})
	var ln *net.UDPConn
	err := l.gw.Do(func() (err error) {
		ln, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gwAddr, gwPort)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before := l.reasons(t)

	const n = 100
	c := l.dial(t, gwAddr, gwPort)
	send(t, c, 0, n)
	if err := ln.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for i := 0; i < n; i++ {
		k, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("the gateway's UDP socket got %d of %d datagrams: %v", i, n, err)
		}
		if seq, ok := seqOf(buf[:k]); !ok || !bytes.Equal(buf[:k], payload(seq)) {
			t.Fatalf("the gateway's UDP socket got %q", buf[:min(k, 16)])
		}
	}
	// Every one reached the kernel, so XDP is done with them: nothing may
	// be waiting on an AF_XDP socket.
	batch := make([]Frame, 16)
	for _, s := range socks {
		if k, err := s.Receive(batch, 0); err != nil || k != 0 {
			t.Fatalf("queue %d: Receive = %d, %v: a passed frame reached the AF_XDP socket", s.Queue(), k, err)
		}
	}
	after := l.reasons(t)
	if got := after[verdict.NoRoute].Packets - before[verdict.NoRoute].Packets; got < n {
		t.Errorf("no_route counted %d, want at least %d", got, n)
	}
	if got := after[verdict.Redirect].Packets - before[verdict.Redirect].Packets; got != 0 {
		t.Errorf("%d redirects for traffic to the gateway itself", got)
	}
	send(t, l.conn, 0, 10)
	if got := collect(t, socks, 10, 10*time.Second, nil, nil); got != 10 {
		t.Fatalf("control: %d of 10 tunnel datagrams reached the sockets", got)
	}
}

// TestReleaseRecycles: a socket with a 64-frame UMEM receives several times
// its UMEM only because Release gives the chunks back; holding them instead
// starves the kernel (rx_dropped, fill ring empty) until they are released.
func TestReleaseRecycles(t *testing.T) {
	l := newLab(t)
	const frames = 64
	socks := l.open(t, Config{Frames: frames, RingSize: frames, FrameSize: 2048})
	q := len(socks)
	total := 4 * frames * q
	perQueue := make([]int, q)
	count := func(i int, s *Socket, f *Frame) {
		u, err := parseUDP(f.Data)
		if err != nil {
			t.Fatal(err)
		}
		if seq, ok := seqOf(u.payload); !ok || !bytes.Equal(u.payload, payload(seq)) || !f.HasMeta {
			t.Fatalf("frame damaged after recycling (meta %v): %q", f.HasMeta, u.payload[:min(len(u.payload), 16)])
		}
		perQueue[i]++
	}
	const burst = 32
	for from := 0; from < total; from += burst {
		send(t, l.conn, from, from+burst)
		if got := collect(t, socks, burst, 10*time.Second, count, nil); got != burst {
			t.Fatalf("after %d datagrams: received %d of the next %d", from, got, burst)
		}
	}
	top := 0
	for _, n := range perQueue {
		top = max(top, n)
	}
	if top <= frames {
		t.Fatalf("no socket received more frames (%v) than its UMEM holds (%d)", perQueue, frames)
	}
	t.Logf("received %d frames per queue %v through %d-frame UMEMs", total, perQueue, frames)

	// Control: hold every frame. Each socket can take at most its UMEM; the
	// rest is dropped by the kernel for want of a chunk.
	statsOf := func() (drops, empties uint64) {
		for _, s := range socks {
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			drops += st.RxDropped
			empties += st.RxFillRingEmptyDescs
		}
		return
	}
	drops0, _ := statsOf()
	held := make([][]Frame, q)
	extra := q*frames + burst
	received := 0
	for from := 0; from < extra; from += burst {
		send(t, l.conn, 100000+from, 100000+from+burst)
		// Take what arrives without waiting for frames that cannot come.
		waitFor(t, 10*time.Second, "every datagram received or dropped", func() (bool, string) {
			received += collect(t, socks, 1<<30, 0, nil, &held)
			drops, _ := statsOf()
			return received+int(drops-drops0) == from+burst, ""
		})
	}
	drops, empties := statsOf()
	for i, s := range socks {
		if s.Held() != len(held[i]) || s.Held() > frames {
			t.Fatalf("queue %d holds %d frames (Held says %d), its UMEM has %d", i, len(held[i]), s.Held(), frames)
		}
	}
	if received > q*frames || drops-drops0 < uint64(extra-q*frames) || empties == 0 {
		t.Fatalf("holding every frame: received %d, rx_dropped +%d, fill ring empty %d times; want at most %d received and the rest dropped",
			received, drops-drops0, empties, q*frames)
	}
	t.Logf("holding: %d received, %d dropped (rx_dropped), fill ring found empty %d times", received, drops-drops0, empties)

	// Release them all (twice: the second must be a no-op) and traffic
	// flows again.
	for i, s := range socks {
		dup := append([]Frame(nil), held[i]...)
		s.Release(held[i])
		s.Release(held[i])
		s.Release(dup) // copies of released frames: ignored, not handed out twice
		if s.Held() != 0 {
			t.Fatalf("queue %d still holds %d frames", i, s.Held())
		}
	}
	send(t, l.conn, 200000, 200000+burst)
	if got := collect(t, socks, burst, 10*time.Second, count, nil); got != burst {
		t.Fatalf("after releasing: received %d of %d", got, burst)
	}
	// Double releases did not put a chunk in the fill ring twice: the
	// kernel holds exactly the UMEM (fill ring + rx ring = frames).
	for i, s := range socks {
		inFill := s.fill.prod - atomic.LoadUint32(s.fill.consumer)
		if inFill > frames {
			t.Fatalf("queue %d: %d chunks in a fill ring of %d", i, inFill, frames)
		}
	}
}

// TestUnregisterAndClose: without a registered socket the program passes
// tunnel frames to the kernel and counts them no_xsk; registering again
// brings them back; Close removes the socket from the XSKMAP by itself.
func TestUnregisterAndClose(t *testing.T) {
	l := newLab(t)
	socks := l.open(t, Config{})
	noXSK := func() uint64 { return l.reasons(t)[verdict.NoXSK].Packets }
	expectNoXSK := func(from uint64, n int) {
		t.Helper()
		waitFor(t, 10*time.Second, "no_xsk to count the datagrams", func() (bool, string) {
			got := noXSK() - from
			return got == uint64(n), fmt.Sprintf("no_xsk +%d, want +%d", got, n)
		})
	}

	send(t, l.conn, 0, 10)
	if got := collect(t, socks, 10, 10*time.Second, nil, nil); got != 10 {
		t.Fatalf("registered: received %d of 10", got)
	}

	for _, s := range socks {
		if err := s.Unregister(); err != nil {
			t.Fatal(err)
		}
	}
	base := noXSK()
	send(t, l.conn, 10, 30)
	expectNoXSK(base, 20)
	if got := collect(t, socks, 1, 0, nil, nil); got != 0 {
		t.Fatalf("unregistered sockets received %d frames", got)
	}

	for _, s := range socks {
		if err := s.Register(l.d.XSKMap()); err != nil {
			t.Fatal(err)
		}
	}
	send(t, l.conn, 30, 40)
	if got := collect(t, socks, 10, 10*time.Second, nil, nil); got != 10 {
		t.Fatalf("registered again: received %d of 10", got)
	}

	before := l.reasons(t)
	for _, s := range socks {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.Receive(make([]Frame, 1), 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Receive after Close: %v, want ErrClosed", err)
		}
	}
	send(t, l.conn, 40, 70)
	expectNoXSK(before[verdict.NoXSK].Packets, 30)
	if got := l.reasons(t)[verdict.Redirect].Packets - before[verdict.Redirect].Packets; got != 0 {
		t.Fatalf("%d redirects after every socket was closed", got)
	}
}

// TestModes: veth has no zero-copy AF_XDP, so auto mode falls back to copy
// and forced zero-copy fails; a queue the device does not have and a queue
// already taken are refused with errors that say so.
func TestModes(t *testing.T) {
	l := newLab(t)
	open := func(cfg Config) (*Socket, error) {
		var s *Socket
		err := l.gw.Do(func() (err error) {
			cfg.Ifindex = l.ifindex
			cfg.Frames, cfg.RingSize = 64, 64
			s, err = Open(cfg)
			return err
		})
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	for _, m := range []Mode{ModeAuto, ModeCopy} {
		s, err := open(Config{Mode: m})
		if err != nil {
			t.Fatalf("%s mode: %v", m, err)
		}
		if s.Mode() != ModeCopy {
			t.Errorf("%s mode on veth bound as %s, want copy", m, s.Mode())
		}
		s.Close()
	}
	if _, err := open(Config{Mode: ModeZeroCopy}); err == nil {
		t.Error("zero-copy on veth succeeded")
	} else {
		t.Logf("zero-copy on veth: %v", err)
	}
	if _, err := open(Config{Queue: l.queues}); err == nil || !errors.Is(err, unix.EINVAL) {
		t.Errorf("queue %d of a %d-queue device: %v, want EINVAL", l.queues, l.queues, err)
	}
	if _, err := open(Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := open(Config{}); err == nil || !errors.Is(err, unix.EBUSY) {
		t.Errorf("second socket on queue 0: %v, want EBUSY", err)
	}
}

// TestReopen closes and re-opens the socket of a queue in a tight loop, as
// a restarting daemon does: the kernel frees the queue only after close
// returns, and Open must wait for it rather than fail.
func TestReopen(t *testing.T) {
	l := newLab(t)
	for i := 0; i < 20; i++ {
		socks := l.open(t, Config{Frames: 64, RingSize: 64})
		send(t, l.conn, i*5, i*5+5)
		if got := collect(t, socks, 5, 10*time.Second, nil, nil); got != 5 {
			t.Fatalf("round %d: received %d of 5", i, got)
		}
		for _, s := range socks {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestInterfaceGone: when the interface is deleted under a socket, Receive
// reports it (ENXIO) at the end of its timeout instead of idling forever.
func TestInterfaceGone(t *testing.T) {
	l := newLab(t)
	socks := l.open(t, Config{Frames: 64, RingSize: 64})
	l.gw.MustRun(t, "ip", "link", "del", "lan0")
	_, err := socks[0].Receive(make([]Frame, 8), 100*time.Millisecond)
	if !errors.Is(err, unix.ENXIO) && !errors.Is(err, unix.ENETDOWN) {
		t.Fatalf("Receive on a socket whose interface is gone: %v, want ENXIO or ENETDOWN", err)
	}
	t.Logf("Receive after the interface was deleted: %v", err)
}
