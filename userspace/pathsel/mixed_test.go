package pathsel

import (
	"slices"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/probe"
)

// mesh is two sites' gateways, A and B, each with WAN links 1 and 2 and
// its own Selector: tunnel (i, j) joins A's link i and B's link j. Each
// gateway numbers its paths itself and calls the other site 2. The
// decisions are local: nothing passes between the two selectors but
// what each measures on the shared tunnels.
type mesh struct {
	t      *testing.T
	now    time.Time
	a, b   *Selector
	alive  map[[2]int]bool
	statsA map[uint16]probe.Stats
	statsB map[uint16]probe.Stats
	evA    []Event
	evB    []Event
}

// A's path for tunnel (i, j) leaves on its link i; B's leaves on link j.
func aID(i, j int) uint16 { return uint16((i-1)*2 + j) }
func bID(i, j int) uint16 { return uint16((j-1)*2 + i) }
func tunnelA(id uint16) [2]int {
	return [2]int{int(id-1)/2 + 1, int(id-1)%2 + 1}
}
func tunnelB(id uint16) [2]int {
	return [2]int{int(id-1)%2 + 1, int(id-1)/2 + 1}
}

func newMesh(t *testing.T, precA, precB [2]Precedence) *mesh {
	m := &mesh{t: t, now: t0, alive: map[[2]int]bool{}, statsA: map[uint16]probe.Stats{}, statsB: map[uint16]probe.Stats{}}
	m.a, _ = New(Config{})
	m.b, _ = New(Config{})
	for i := 1; i <= 2; i++ {
		for j := 1; j <= 2; j++ {
			m.must(m.a.AddPath(Path{ID: aID(i, j), Site: peer, Link: uint8(i), Precedence: precA[i-1], RemotePrecedence: precB[j-1], Bandwidth: 100 * mbit}, m.now))
			m.must(m.b.AddPath(Path{ID: bID(i, j), Site: peer, Link: uint8(j), Precedence: precB[j-1], RemotePrecedence: precA[i-1], Bandwidth: 100 * mbit}, m.now))
			m.statsA[aID(i, j)], m.statsB[bID(i, j)] = clean(), clean()
			m.tunnel(i, j, true)
		}
	}
	m.a.Tick(m.now, m.statA)
	m.b.Tick(m.now, m.statB)
	return m
}

func (m *mesh) must(_ Output, err error) {
	if err != nil {
		m.t.Fatal(err)
	}
}

func (m *mesh) statA(id uint16) (probe.Stats, bool) { s, ok := m.statsA[id]; return s, ok }
func (m *mesh) statB(id uint16) (probe.Stats, bool) { s, ok := m.statsB[id]; return s, ok }

func (m *mesh) tunnel(i, j int, up bool) {
	m.alive[[2]int{i, j}] = up
	m.evA = append(m.evA, m.a.Connected(aID(i, j), up, m.now, "").Events...)
	m.evB = append(m.evB, m.b.Connected(bID(i, j), up, m.now, "").Events...)
}

// quality sets what both ends measure on a tunnel.
func (m *mesh) quality(i, j int, s probe.Stats) {
	m.statsA[aID(i, j)], m.statsB[bID(i, j)] = s, s
}

func (m *mesh) advance(d time.Duration) {
	for end := m.now.Add(d); m.now.Before(end); {
		m.now = m.now.Add(time.Second)
		m.evA = append(m.evA, m.a.Tick(m.now, m.statA).Events...)
		m.evB = append(m.evB, m.b.Tick(m.now, m.statB).Events...)
		m.check()
	}
}

// tunnels returns the tunnels each side sends on.
func (m *mesh) tunnels() (aToB, bToA [][2]int) {
	for _, id := range m.a.Selected(peer) {
		aToB = append(aToB, tunnelA(id))
	}
	for _, id := range m.b.Selected(peer) {
		bToA = append(bToA, tunnelB(id))
	}
	return
}

// check: each side's decision is consistent with its own view, and
// traffic has a live tunnel both ways.
func (m *mesh) check() {
	m.t.Helper()
	checkConsistent(m.t, m.a, peer, m.now)
	checkConsistent(m.t, m.b, peer, m.now)
	ab, ba := m.tunnels()
	if len(ab) == 0 || len(ba) == 0 {
		m.t.Fatalf("at +%v: no path one way: A->B %v, B->A %v", m.now.Sub(t0), ab, ba)
	}
	for _, tn := range append(ab, ba...) {
		if !m.alive[tn] {
			m.t.Fatalf("at +%v: traffic on dead tunnel %v", m.now.Sub(t0), tn)
		}
	}
}

func (m *mesh) expect(aToB, bToA [][2]int) {
	m.t.Helper()
	ab, ba := m.tunnels()
	if !slices.Equal(ab, aToB) || !slices.Equal(ba, bToA) {
		m.t.Fatalf("at +%v: A->B %v, B->A %v; want %v and %v", m.now.Sub(t0), ab, ba, aToB, bToA)
	}
}

type tunnels = [][2]int

// TestMixedActivePassiveAndActiveActive: A is active/passive, B is
// active/active. A's single active link sends to both of B's links; B's
// two links both send to A's active link. When A's active link dies, each
// side moves on its own: A to its passive link, B to A's passive
// endpoint; both come back once the link is good again.
func TestMixedActivePassiveAndActiveActive(t *testing.T) {
	m := newMesh(t, [2]Precedence{Active, Passive}, [2]Precedence{Active, Active})
	m.check()
	m.expect(tunnels{{1, 1}, {1, 2}}, tunnels{{1, 1}, {1, 2}})
	// B spreads over its two links by bandwidth (equal here).
	c := counts(m.b.Tables(peer)[0])
	if d := c[bID(1, 1)] - c[bID(1, 2)]; d < -1 || d > 1 {
		t.Fatalf("B's shares %v", c)
	}

	m.tunnel(1, 1, false)
	m.tunnel(1, 2, false)
	m.check()
	m.expect(tunnels{{2, 1}, {2, 2}}, tunnels{{2, 1}, {2, 2}})
	// Each tunnel's session ends on its own: one failover each, the
	// second to the other precedence tier.
	for _, evs := range [][]Event{m.evA, m.evB} {
		fo := collect[PathFailover](evs)
		if len(fo) != 2 || len(fo[1].To) != 2 {
			t.Fatalf("failovers %+v", fo)
		}
	}

	m.tunnel(1, 1, true)
	m.tunnel(1, 2, true)
	m.advance(50 * time.Second)
	m.expect(tunnels{{1, 1}, {1, 2}}, tunnels{{1, 1}, {1, 2}})
	if len(collect[PathFailback](m.evA)) != 1 || len(collect[PathFailback](m.evB)) != 1 {
		t.Fatal("failbacks")
	}
}

// TestAsymmetricFailover: both sites active/passive; A has a stricter
// jitter threshold (10 ms) than B (30 ms). At 20 ms of jitter on A's
// active link, A fails over and B does not: A sends on A2-B1, B still on
// B1-A1. Both tunnels are alive, so traffic flows both ways, each side
// consistent with its own view; B's flows do not move.
func TestAsymmetricFailover(t *testing.T) {
	m := newMesh(t, [2]Precedence{Active, Passive}, [2]Precedence{Active, Passive})
	if err := m.a.SetThresholds(peer, Thresholds{Jitter: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	m.expect(tunnels{{1, 1}}, tunnels{{1, 1}})
	m.quality(1, 1, withJitter(20*time.Millisecond))
	m.quality(1, 2, withJitter(20*time.Millisecond))
	m.advance(20 * time.Second)
	m.expect(tunnels{{2, 1}}, tunnels{{1, 1}})
	if len(collect[PathFailover](m.evA)) != 1 || len(collect[PathFailover](m.evB)) != 0 {
		t.Fatal("A fails over, B does not")
	}
	if m.b.Migrating(peer) && len(m.b.Moves(m.now, []FlowRef{{Site: peer, Path: bID(1, 1), Hash: 5}})) != 0 {
		t.Fatal("B moves flows")
	}

	// Then A's active link dies: B follows, to A's passive endpoint; A
	// stays where it is. Now both use tunnel A2-B1.
	m.tunnel(1, 1, false)
	m.tunnel(1, 2, false)
	m.check()
	m.expect(tunnels{{2, 1}}, tunnels{{2, 1}})
	if len(collect[PathFailover](m.evA)) != 1 || len(collect[PathFailover](m.evB)) != 1 {
		t.Fatal("only B fails over now")
	}
	m.advance(30 * time.Second)
}

// TestAsymmetricBothPassive: A's passive link fails while A is on its
// active link: nothing changes for A; B, whose view of the A2 endpoints
// is a passive tier, does not change either.
func TestAsymmetricBothPassive(t *testing.T) {
	m := newMesh(t, [2]Precedence{Active, Passive}, [2]Precedence{Active, Active})
	m.tunnel(2, 1, false)
	m.tunnel(2, 2, false)
	m.check()
	m.expect(tunnels{{1, 1}, {1, 2}}, tunnels{{1, 1}, {1, 2}})
	if len(collect[PathFailover](m.evA))+len(collect[PathFailover](m.evB)) != 0 {
		t.Fatal("a standby path's loss is no failover")
	}
}
