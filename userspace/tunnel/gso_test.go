package tunnel

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// TestBatchOverUDP sends batches between two namespaces over real UDP
// sockets: recvmmsg/sendmmsg, UDP GSO on the sender (runs of equal-sized
// records in one message, a shorter one ending a run) and UDP GRO on the
// receiver (several records in one message). Every frame arrives once, in
// order, intact.
func TestBatchOverUDP(t *testing.T) {
	goNS, peerNS := wanPair(t)
	ca := newTestCA(t)
	var mu sync.Mutex
	var got [][]byte
	done := make(chan struct{})
	const total = 3*64 + 3
	server := SessionConfig{
		Identity: ca.identity("a", ca), Link: Link{Name: "wan0", Addr: netip.AddrPortFrom(goWAN, 4600)},
		Remote: netip.AddrPortFrom(peerWAN, 4601), Site: "b", Role: RoleServer,
		OnFrames: func(frames []Frame) {
			mu.Lock()
			defer mu.Unlock()
			for _, f := range frames {
				got = append(got, append([]byte(nil), f.Payload...))
			}
			if len(got) == total {
				close(done)
			}
		},
	}
	server.Socket = socketIn(goNS, server.Link)
	client := SessionConfig{
		Identity: ca.identity("b", ca), Link: Link{Name: "wan0", Addr: netip.AddrPortFrom(peerWAN, 4601)},
		Remote: netip.AddrPortFrom(goWAN, 4600), Site: "a", Role: RoleClient,
	}
	client.Socket = socketIn(peerNS, client.Link)
	srvCh := startSession(context.Background(), server)
	cli := result(t, startSession(context.Background(), client))
	srv := result(t, srvCh)
	if cli.err != nil || srv.err != nil {
		t.Fatalf("client %v, server %v", cli.err, srv.err)
	}
	gso, _ := cli.s.ep.conn.offload()
	_, gro := srv.s.ep.conn.offload()
	if !gso || !gro {
		t.Fatalf("offloads: GSO %v on the sender, GRO %v on the receiver", gso, gro)
	}
	frame := func(i int) []byte {
		size := 1200
		if i%64 == 63 {
			size = 300 + i // a shorter record ends a run
		}
		b := bytes.Repeat([]byte{byte(i)}, size)
		binary.BigEndian.PutUint32(b, uint32(i))
		return b
	}
	batch := NewBatch()
	i := 0
	for round := range 4 {
		n := 64
		if round == 3 {
			n = total - 3*64
		}
		for range n {
			if err := batch.Add(cli.s, FrameIPv4, frame(i)); err != nil {
				t.Fatal(err)
			}
			i++
		}
		if err := batch.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(waitTimeout):
		mu.Lock()
		t.Fatalf("%d of %d frames arrived", len(got), total)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, p := range got {
		if !bytes.Equal(p, frame(i)) {
			t.Fatalf("frame %d: %d bytes starting %x", i, len(p), p[:8])
		}
	}
	if gso, _ := cli.s.ep.conn.offload(); !gso {
		t.Error("the kernel refused a GSO send")
	}
	if srv.s.ep.coalesced.Load() == 0 {
		t.Error("no received message held several records (GRO)")
	}
	t.Logf("%d frames; %d received messages held several records", total, srv.s.ep.coalesced.Load())
}
