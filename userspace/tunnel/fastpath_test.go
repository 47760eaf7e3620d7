package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/record"
)

// hasRecordType tells whether a datagram carries a record of type t.
func hasRecordType(d []byte, t record.ContentType) bool {
	for rest := d; len(rest) > 0; {
		h, _, r, err := record.Split(rest)
		if err != nil {
			return false
		}
		if h.Type == t {
			return true
		}
		rest = r
	}
	return false
}

// dropEveryOtherFlight6 loses the server's last flight (change cipher spec
// and Finished) the first time it is sent in each handshake, so that the
// client retransmits its flight and the server's pion, already handed
// over, sends its Finished again.
func dropEveryOtherFlight6(server, client netip.AddrPort) func(from, to netip.AddrPort, data []byte) bool {
	var seen atomic.Int32
	return func(from, to netip.AddrPort, data []byte) bool {
		if from != server || to != client || !hasRecordType(data, record.ChangeCipherSpec) {
			return false
		}
		return seen.Add(1)%2 == 1
	}
}

type keyRing struct {
	mu   sync.Mutex
	gens []record.Keys // the client's keys, generation by generation
}

func (r *keyRing) add(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := s.cur.Load().keys
	for _, g := range r.gens {
		if bytes.Equal(g.LocalKey, k.LocalKey) {
			return
		}
	}
	r.gens = append(r.gens, k)
}

// which finds the generation and direction whose key authenticates rec.
func (r *keyRing) which(t *testing.T, h record.Header, rec []byte) (gen int, clientToServer bool, ok bool) {
	found := 0
	for i, k := range r.gens {
		for _, dir := range []bool{true, false} {
			key, salt := k.LocalKey, k.LocalSalt
			if !dir {
				key, salt = k.RemoteKey, k.RemoteSalt
			}
			o, err := record.NewOpener(key, salt, h.Epoch)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Open(h, append([]byte(nil), rec...)); err == nil {
				gen, clientToServer = i, dir
				found++
			}
		}
	}
	return gen, clientToServer, found == 1
}

// TestHandoverNeverReusesNonce checks the one rule of the hand-over: no
// two records on the wire share a key and a sequence number (the GCM
// nonce). It makes the hard cases happen: the server's pion, already
// handed over, retransmits its Finished (its last flight was lost) while
// the record layer sends data; rekeys do the same; close_notify ends it.
// Every record of epoch 1 in both directions must authenticate under
// exactly one key generation, with a sequence number used once.
func TestHandoverNeverReusesNonce(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	n.setDropData(dropEveryOtherFlight6(addrB, addrA))
	var ctrA, ctrB Counters
	onA, fromB := frameCollector()
	onB, fromA := frameCollector()
	cfgA := endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient)
	cfgA.OnFrame, cfgA.Counters = onA, &ctrA
	cfgB := endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer)
	cfgB.OnFrame, cfgB.Counters = onB, &ctrB

	server := startSession(context.Background(), cfgB)
	client := startSession(context.Background(), cfgA)
	b := result(t, server)
	if b.err != nil {
		t.Fatal(b.err)
	}
	// The server is up first; the client waits for its lost Finished.
	// What the server sends now races the retransmission.
	for i := range 5 {
		if err := b.s.Send(FrameIPv4, []byte(fmt.Sprintf("early %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	a := result(t, client)
	if a.err != nil {
		t.Fatal(a.err)
	}
	var ring keyRing
	ring.add(a.s)
	for i := range 5 {
		if f := nextFrame(t, fromB); f.payload != fmt.Sprintf("early %d", i) {
			t.Fatalf("client received %q, want early %d", f.payload, i)
		}
	}
	exchange := func(round int) {
		t.Helper()
		for i := range 20 {
			if err := a.s.Send(FrameIPv4, []byte(fmt.Sprintf("a%d-%d", round, i))); err != nil {
				t.Fatal(err)
			}
			if err := b.s.Send(FrameIPv4, []byte(fmt.Sprintf("b%d-%d", round, i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 20 {
			if f := nextFrame(t, fromA); f.payload != fmt.Sprintf("a%d-%d", round, i) {
				t.Fatalf("server received %q", f.payload)
			}
			if f := nextFrame(t, fromB); f.payload != fmt.Sprintf("b%d-%d", round, i) {
				t.Fatalf("client received %q", f.payload)
			}
		}
	}
	exchange(0)
	for round := 1; round <= 2; round++ {
		if err := a.s.Rekey(); err != nil {
			t.Fatal(err)
		}
		ring.add(a.s)
		exchange(round)
		// The server switches when the client's first new record arrives.
		if got := b.s.Stats().Keys; got != uint64(round+1) {
			t.Fatalf("server on key generation %d after rekey %d", got, round)
		}
	}
	if err := a.s.Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, b.s)
	if !errors.Is(b.s.Err(), ErrPeerClosed) {
		t.Errorf("server ended with %v, want ErrPeerClosed", b.s.Err())
	}
	if ctrB.PionResealed.Load() < 3 {
		t.Errorf("server: %d records of pion resealed, want its Finished retransmitted in each of the 3 handshakes", ctrB.PionResealed.Load())
	}
	if ctrA.PionSuppressed.Load() == 0 || ctrB.PionSuppressed.Load() == 0 {
		t.Errorf("pion's close_notify was not suppressed: %d, %d", ctrA.PionSuppressed.Load(), ctrB.PionSuppressed.Load())
	}

	type nonce struct {
		gen    int
		c2s    bool
		epoch  uint16
		seq    uint64
		origin string
	}
	used := map[nonce]string{}
	records := 0
	for _, dir := range []struct{ from, to netip.AddrPort }{{addrA, addrB}, {addrB, addrA}} {
		for _, d := range n.sent(dir.from, dir.to) {
			for rest := d; len(rest) > 0; {
				h, rec, r, err := record.Split(rest)
				if err != nil {
					t.Fatalf("unparsable datagram %x", d)
				}
				rest = r
				if h.Epoch == 0 {
					continue // plaintext handshake: no nonce
				}
				gen, c2s, ok := ring.which(t, h, rec)
				if !ok {
					t.Fatalf("record %v from %v authenticates under no single key", h, dir.from)
				}
				if c2s != (dir.from == addrA) {
					t.Fatalf("record %v from %v sealed with the other direction's key", h, dir.from)
				}
				k := nonce{gen: gen, c2s: c2s, epoch: h.Epoch, seq: h.Seq}
				if prev, dup := used[k]; dup {
					t.Fatalf("nonce reused: generation %d, %v, first as %s", gen, h, prev)
				}
				used[k] = h.String()
				records++
			}
		}
	}
	if records < 3*2*20+5 {
		t.Fatalf("only %d encrypted records on the wire", records)
	}
	t.Logf("%d encrypted records, every nonce once; pion records resealed %d, suppressed %d+%d",
		records, ctrB.PionResealed.Load(), ctrA.PionSuppressed.Load(), ctrB.PionSuppressed.Load())
	// The last datagram from the client is its close_notify, sealed by the
	// record layer with the last key.
	sent := n.sent(addrA, addrB)
	last := sent[len(sent)-1]
	h, rec, _, _ := record.Split(last)
	if gen, _, ok := ring.which(t, h, rec); h.Type != record.Alert || !ok || gen != len(ring.gens)-1 {
		t.Errorf("last datagram from the client: %v (generation %d), want the close_notify under the last key", h, gen)
	}
}

// TestRekeyKeepsTraffic: frames flow both ways without a loss while the
// client rekeys again and again; both sides end on the same, newest keys.
func TestRekeyKeepsTraffic(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	var ctrA, ctrB Counters
	var gotA, gotB atomic.Int64
	cfgA := endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient)
	cfgA.Counters = &ctrA
	cfgA.OnFrames = func(frames []Frame) { gotA.Add(int64(len(frames))) }
	cfgB := endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer)
	cfgB.Counters = &ctrB
	cfgB.OnFrames = func(frames []Frame) { gotB.Add(int64(len(frames))) }
	a, b := connect(t, n, cfgA, cfgB)

	const rekeys = 5
	stop := make(chan struct{})
	var sent [2]atomic.Int64
	var wg sync.WaitGroup
	for i, s := range []*Session{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := NewBatch()
			payload := bytes.Repeat([]byte{byte(i)}, 200)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for range 8 {
					if err := batch.Add(s, FrameIPv4, payload); err != nil {
						t.Error(err)
						return
					}
				}
				if err := batch.Flush(); err != nil {
					t.Error(err)
					return
				}
				sent[i].Add(8)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for range rekeys {
		time.Sleep(30 * time.Millisecond)
		if err := a.Rekey(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	deadline := time.Now().Add(waitTimeout)
	for (gotB.Load() != sent[0].Load() || gotA.Load() != sent[1].Load()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if gotB.Load() != sent[0].Load() || gotA.Load() != sent[1].Load() {
		t.Errorf("a→b %d of %d frames, b→a %d of %d", gotB.Load(), sent[0].Load(), gotA.Load(), sent[1].Load())
	}
	// b switches on a's first record under the new keys; wait for a's
	// keepalive if the traffic stopped first.
	if a.Stats().Keys != rekeys+1 {
		t.Errorf("client on key generation %d, want %d", a.Stats().Keys, rekeys+1)
	}
	for b.Stats().Keys != rekeys+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.Stats().Keys != rekeys+1 || ctrA.Rekeys.Load() != rekeys || ctrB.Rekeys.Load() != rekeys {
		t.Errorf("server on key generation %d; rekeys counted %d and %d", b.Stats().Keys, ctrA.Rekeys.Load(), ctrB.Rekeys.Load())
	}
	if !bytes.Equal(a.cur.Load().keys.LocalKey, b.cur.Load().keys.RemoteKey) {
		t.Error("client and server ended on different keys")
	}
	if f := ctrA.Forged.Load() + ctrB.Forged.Load() + ctrA.Replayed.Load() + ctrB.Replayed.Load(); f != 0 {
		t.Errorf("%d records refused around the rekeys: client %v, server %v", f, ctrA.Snapshot(), ctrB.Snapshot())
	}
	t.Logf("a→b %d frames, b→a %d frames across %d rekeys", gotB.Load(), gotA.Load(), rekeys)
}

// TestRekeyByRecordsAndTime: the client rekeys by itself when a key has
// carried RekeyRecords records either way, and after RekeyInterval.
func TestRekeyByRecordsAndTime(t *testing.T) {
	ca := newTestCA(t)
	for _, tt := range []struct {
		name     string
		records  uint64
		interval time.Duration
		sendFrom int // 0: client, 1: server
		send     int
		wait     time.Duration
	}{
		{"records sent", 100, time.Hour, 0, 300, 0},
		{"records received", 100, time.Hour, 1, 300, 0},
		{"interval", 0, time.Second, 0, 0, 1500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newMemNet()
			var ctr Counters
			cfgA := endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient)
			cfgA.KeepaliveInterval, cfgA.RekeyRecords, cfgA.RekeyInterval, cfgA.Counters = 50*time.Millisecond, tt.records, tt.interval, &ctr
			cfgB := endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer)
			cfgB.KeepaliveInterval = 50 * time.Millisecond
			a, b := connect(t, n, cfgA, cfgB)
			from := []*Session{a, b}[tt.sendFrom]
			for range tt.send {
				if err := from.Send(FrameIPv4, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(waitTimeout)
			time.Sleep(tt.wait)
			for ctr.Rekeys.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if ctr.Rekeys.Load() == 0 || a.Stats().Keys < 2 {
				t.Fatalf("no rekey: %d", ctr.Rekeys.Load())
			}
		})
	}
}

// TestDropsCounted: replayed, forged, malformed and unknown datagrams are
// dropped and counted by reason, and the session goes on.
func TestDropsCounted(t *testing.T) {
	ca := newTestCA(t)
	n := newMemNet()
	var ctr Counters
	onB, fromA := frameCollector()
	cfgA := endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient)
	cfgB := endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer)
	cfgB.OnFrame, cfgB.Counters = onB, &ctr
	a, _ := connect(t, n, cfgA, cfgB)
	if err := a.Send(FrameIPv4, []byte("genuine")); err != nil {
		t.Fatal(err)
	}
	nextFrame(t, fromA)
	recs := n.waitSent(t, addrA, addrB, 1, func(d []byte) bool { return isAppData(d) && len(d) == RecordOverhead+1+7 })
	genuine := recs[len(recs)-1]

	// A forged copy of an accepted record is caught as a replay first:
	// the forgeries get new sequence numbers.
	forged := append([]byte(nil), genuine...)
	forged[10] += 100
	forged[len(forged)-3] ^= 1
	farForged := append([]byte(nil), genuine...)
	farForged[6] = 0x7f // a far sequence number: must not move the window
	truncated := genuine[:20]
	badType := append([]byte{25}, genuine[1:]...)
	wait := func(what string, c *atomic.Uint64, want uint64) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for c.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := c.Load(); got != want {
			t.Errorf("%s: counted %d, want %d (%v)", what, got, want, ctr.Snapshot())
		}
	}
	n.inject(addrA, addrB, genuine)
	wait("replayed", &ctr.Replayed, 1)
	n.inject(addrA, addrB, forged)
	n.inject(addrA, addrB, farForged)
	wait("forged", &ctr.Forged, 2)
	n.inject(addrA, addrB, truncated)
	n.inject(addrA, addrB, badType)
	wait("malformed", &ctr.Malformed, 2)
	n.inject(netip.MustParseAddrPort("198.18.0.9:4500"), addrB, genuine)
	wait("unknown peer", &ctr.UnknownPeer, 1)

	// Still fine: the next genuine record arrives.
	if err := a.Send(FrameIPv4, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if f := nextFrame(t, fromA); f.payload != "after" {
		t.Errorf("received %q after the garbage", f.payload)
	}
	snap := ctr.Snapshot()
	for _, k := range []string{"record_replayed", "record_forged", "record_malformed", "record_unknown_peer"} {
		if snap[k] == 0 {
			t.Errorf("Snapshot()[%q] = 0", k)
		}
	}
}

// FuzzReceive feeds arbitrary datagrams from the peer's address to an
// established session's receive path: nothing panics, nothing is passed on
// as a frame (nothing the fuzzer makes authenticates), and the session
// still takes genuine records afterwards.
func FuzzReceive(f *testing.F) {
	ca := newTestCA(f)
	n := newMemNet()
	var ctr Counters
	var frames atomic.Int64
	cfgA := endpoint(n, ca.identity("a", ca), addrA, addrB, "b", RoleClient)
	cfgB := endpoint(n, ca.identity("b", ca), addrB, addrA, "a", RoleServer)
	cfgB.Counters = &ctr
	cfgB.OnFrames = func(fs []Frame) { frames.Add(int64(len(fs))) }
	serverCh := startSession(context.Background(), cfgB)
	a, err := NewSession(context.Background(), cfgA)
	if err != nil {
		f.Fatal(err)
	}
	srv := <-serverCh
	if srv.err != nil {
		f.Fatal(srv.err)
	}
	_ = a.Send(FrameIPv4, []byte("seed"))
	time.Sleep(50 * time.Millisecond)
	seed := n.sent(addrA, addrB)
	for _, d := range seed {
		f.Add(d)
	}
	f.Add([]byte{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 25})
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1})
	f.Add([]byte{21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 5, 0, 26, 1, 2, 3})
	// Nothing reaches the server's socket from now on: the fuzz inputs go
	// straight to its receive path, on this goroutine only.
	n.setDrop(func(_, _ netip.AddrPort) bool { return true })
	s := srv.s
	before := frames.Load()
	f.Cleanup(func() { a.Close(); s.Close() })
	f.Fuzz(func(t *testing.T, d []byte) {
		if s.ended.Load() {
			return // a fuzzed close_notify? it cannot authenticate
		}
		got := s.ep.datagram(s.p, addrA, append([]byte(nil), d...), time.Now().UnixNano(), nil)
		if len(got) != 0 && !isReplayOfSeed(seed, d) {
			t.Fatalf("a fuzzed datagram produced frames: %+v", got)
		}
		if frames.Load() != before {
			t.Fatal("frames delivered")
		}
	})
}

func isReplayOfSeed(seed [][]byte, d []byte) bool {
	for _, s := range seed {
		if bytes.HasPrefix(d, s) {
			return true
		}
	}
	return false
}
