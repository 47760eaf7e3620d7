package lab

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/testenv"
)

// linkOfPath returns the local link a site's path id is on.
func linkOfPath(t *testing.T, s *Site, id uint16) string {
	t.Helper()
	ps, err := s.Client().Paths()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == id {
			return p.Link
		}
	}
	t.Fatalf("site %s has no path %d", s.Name, id)
	return ""
}

// streamLink returns the link site a's cached flow to b's host on port
// uses now.
func streamLink(t *testing.T, a, b *Site, port uint16) string {
	t.Helper()
	flows, err := a.Client().Flows()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if f.Dst == b.HostAddr.String() && f.Dport == port {
			return linkOfPath(t, a, f.Path)
		}
	}
	return ""
}

// waitStream waits until the stream has delivered n more datagrams.
func waitStream(t *testing.T, st *Stream, n int, timeout time.Duration) {
	t.Helper()
	want := st.Received() + n
	deadline := time.Now().Add(timeout)
	for st.Received() < want {
		if time.Now().After(deadline) {
			t.Fatalf("stream delivered %d of %d datagrams in %s", st.Received()-want+n, n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBlackholeFailover blackholes the active link under a steady
// 200 packets/s stream: the stream continues on the passive link.
func TestBlackholeFailover(t *testing.T) {
	l := startLabWith(t, Options{Impairable: true}, 4)
	a, b := l.Site("a"), l.Site("b")
	fa := follow(t, a)
	st, err := l.StartStream(a, b, 7000, 200)
	if err != nil {
		t.Fatal(err)
	}
	waitStream(t, st, 200, 10*time.Second)
	if link := streamLink(t, a, b, 7000); link != "wan1" {
		t.Fatalf("the stream starts on %q, want the active link wan1", link)
	}
	mark := fa.lastSeq()
	hit := time.Now()
	if err := l.Impair("a", "wan1", Both, Impairment{Blackhole: true}); err != nil {
		t.Fatal(err)
	}
	fo := fa.wait(t, events.PathFailover, mark, 1, 10*time.Second)
	waitStream(t, st, 400, 10*time.Second) // two more seconds of traffic after the failover
	res := st.Stop()
	detect := fo[0].Time.Sub(hit)
	t.Logf("blackhole: failover event after %v, largest gap %v, %d of %d datagrams lost", detect, res.MaxGap, res.Lost, res.Sent)
	if link := streamLink(t, a, b, 7000); link != "wan2" {
		t.Fatalf("after the blackhole the stream is on %q, want the passive link wan2", link)
	}
	if res.GapStart.Before(hit.Add(-100 * time.Millisecond)) {
		t.Fatalf("the largest gap (%v) started before the blackhole", res.MaxGap)
	}
	// Sub-second detection is the benchmark's target; here a generous
	// bound that still fails a keepalive-speed (3 s) failover.
	if res.MaxGap > 2500*time.Millisecond {
		t.Fatalf("traffic stopped for %v", res.MaxGap)
	}
}

// TestLossFailoverAndHoldDown: 5 % loss on the active link moves the flows
// after the evaluation period, not at once; they return only after the
// hold-down once the link is clean.
func TestLossFailoverAndHoldDown(t *testing.T) {
	l := startLabWith(t, Options{Impairable: true}, 4)
	a, b := l.Site("a"), l.Site("b")
	fa := follow(t, a)
	st, err := l.StartStream(a, b, 7001, 50)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	waitStream(t, st, 50, 10*time.Second)
	mark := fa.lastSeq()
	hit := time.Now()
	if err := l.Impair("a", "wan1", Both, Impairment{Loss: 0.05}); err != nil {
		t.Fatal(err)
	}
	alert := fa.wait(t, events.LinkQualityAlert, mark, 1, 60*time.Second)
	fo := fa.wait(t, events.PathFailover, mark, 1, 60*time.Second)
	t.Logf("5%% loss: alert %q after %v, failover after %v", alert[0].Reason, alert[0].Time.Sub(hit), fo[0].Time.Sub(hit))
	if alert[0].Detail["metric"] != "loss" {
		t.Fatalf("alert on %q, want loss", alert[0].Detail["metric"])
	}
	// An evaluation every 10 s, two bad ones needed: not at once.
	if d := fo[0].Time.Sub(hit); d < 5*time.Second {
		t.Fatalf("failover %v after 5%% loss started: faster than the evaluation period allows", d)
	}
	// Established flows move gradually: wait for the stream to move.
	deadline := time.Now().Add(20 * time.Second)
	for streamLink(t, a, b, 7001) != "wan2" {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not move to wan2")
		}
		time.Sleep(200 * time.Millisecond)
	}
	mark = fa.lastSeq()
	cleared := time.Now()
	if err := l.Clear("a", "wan1"); err != nil {
		t.Fatal(err)
	}
	fb := fa.wait(t, events.PathFailback, mark, 1, 90*time.Second)
	back := fb[0].Time.Sub(cleared)
	t.Logf("failback %v after the loss cleared", back)
	if back < 10*time.Second {
		t.Fatalf("failback %v after the link cleared, before the 10 s hold-down", back)
	}
	deadline = time.Now().Add(20 * time.Second)
	for streamLink(t, a, b, 7001) != "wan1" {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not return to wan1")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestActiveActiveBandwidthSplit: two active links at 300 and 100 Mbit/s
// get new flows 75/25.
func TestActiveActiveBandwidthSplit(t *testing.T) {
	l := startLabWith(t, Options{Links: [2]LinkSpec{{1, "300Mbit"}, {1, "100Mbit"}}}, 4)
	a, b := l.Site("a"), l.Site("b")
	const flows = 1200
	err := (&testenv.Netns{Name: a.Host}).Do(func() error {
		for i := 0; i < flows; i++ {
			if err := sendOne(b.HostAddr, uint16(20000+i), 9); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	perLink := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fl, err := a.Client().Flows()
		if err != nil {
			t.Fatal(err)
		}
		paths, err := a.Client().Paths()
		if err != nil {
			t.Fatal(err)
		}
		linkOf := map[uint16]string{}
		for _, p := range paths {
			linkOf[p.ID] = p.Link
		}
		perLink = map[string]int{}
		n := 0
		for _, f := range fl {
			if f.Dst == b.HostAddr.String() && f.Dport == 9 {
				perLink[linkOf[f.Path]]++
				n++
			}
		}
		if n >= flows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d flows cached", n, flows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	share := float64(perLink["wan1"]) / float64(flows)
	t.Logf("flows per link: %v (wan1 %.1f%%)", perLink, 100*share)
	if share < 0.70 || share > 0.80 {
		t.Fatalf("wan1 (300 Mbit/s) got %.1f%% of new flows, want 75 ± 5 %%", 100*share)
	}
}

// TestOscillationBound: 3 s bad, 3 s good, for 60 s. Bound: at most 2
// failovers and no failback. A blackhole kills both of the link's paths
// within a second; their sessions end separately, so one outage may be
// reported as two failovers; after that the link never has the three
// clean evaluations plus the hold-down it needs to be chosen again, so
// later outages change nothing.
func TestOscillationBound(t *testing.T) {
	l := startLabWith(t, Options{Impairable: true}, 4)
	a := l.Site("a")
	fa := follow(t, a)
	mark := fa.lastSeq()
	end := time.Now().Add(60 * time.Second)
	for bad := true; time.Now().Before(end); bad = !bad {
		var err error
		if bad {
			err = l.Impair("a", "wan1", Both, Impairment{Blackhole: true})
		} else {
			err = l.Clear("a", "wan1")
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // the impairment's own schedule, not synchronisation
	}
	fo := len(fa.since(events.PathFailover, mark))
	fb := len(fa.since(events.PathFailback, mark))
	t.Logf("oscillating for 60 s: %d failovers, %d failbacks", fo, fb)
	if fo < 1 || fo > 2 || fb != 0 {
		t.Fatalf("%d failovers and %d failbacks, want 1-2 and 0", fo, fb)
	}
}

// TestLastResortCarriesNoOffCloud: a last-resort link has no mesh paths;
// off-cloud traffic stays on the other link and stops when it dies.
func TestLastResortCarriesNoOffCloud(t *testing.T) {
	l := startLabWith(t, Options{Impairable: true, SiteLinks: map[string][2]LinkSpec{"a": {{1, "100Mbit"}, {3, "100Mbit"}}}}, 2)
	a, b := l.Site("a"), l.Site("b")
	ps, err := a.Client().Paths()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Link == "wan2" {
			t.Fatalf("the last-resort link has a mesh path: %+v", p)
		}
	}
	st, err := l.StartStream(a, b, 7002, 100)
	if err != nil {
		t.Fatal(err)
	}
	waitStream(t, st, 100, 10*time.Second)
	if err := l.Impair("a", "wan1", Both, Impairment{Blackhole: true}); err != nil {
		t.Fatal(err)
	}
	fa := follow(t, a)
	fa.wait(t, events.PathFailover, 0, 1, 10*time.Second)
	before := st.Received()
	after := time.Now().Add(2 * time.Second)
	for time.Now().Before(after) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := st.Received() - before; got > 5 {
		t.Fatalf("%d datagrams reached b with wan1 dead: off-cloud traffic used the last-resort link", got)
	}
	c, err := a.Client().Status()
	if err != nil {
		t.Fatal(err)
	}
	if c.Reasons["no_path"].Packets == 0 {
		t.Fatalf("no no_path drops counted: %+v", c.Reasons)
	}
	st.Stop()
}

func sendOne(dst netip.Addr, sport, dport uint16) error {
	c, err := netDialUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), sport), netip.AddrPortFrom(dst, dport))
	if err != nil {
		return fmt.Errorf("port %d: %w", sport, err)
	}
	defer c.Close()
	_, err = c.Write([]byte("x"))
	return err
}

// TestMixedSitesAsymmetricFailover: site a is active/passive, site b
// active/active. When a's active link dies, a fails over to its passive
// link while b keeps using both of its own links (to a's remaining
// endpoint): the paths are asymmetric and traffic flows both ways.
func TestMixedSitesAsymmetricFailover(t *testing.T) {
	l := startLabWith(t, Options{Impairable: true, SiteLinks: map[string][2]LinkSpec{
		"a": {{1, "100Mbit"}, {2, "100Mbit"}},
		"b": {{1, "100Mbit"}, {1, "100Mbit"}},
	}}, 4)
	a, b := l.Site("a"), l.Site("b")
	fa := follow(t, a)
	ab, err := l.StartStream(a, b, 7003, 100)
	if err != nil {
		t.Fatal(err)
	}
	ba, err := l.StartStream(b, a, 7004, 100)
	if err != nil {
		t.Fatal(err)
	}
	waitStream(t, ab, 100, 10*time.Second)
	waitStream(t, ba, 100, 10*time.Second)
	if err := l.Impair("a", "wan1", Both, Impairment{Blackhole: true}); err != nil {
		t.Fatal(err)
	}
	fa.wait(t, events.PathFailover, 0, 1, 10*time.Second)
	waitStream(t, ab, 200, 10*time.Second)
	waitStream(t, ba, 200, 10*time.Second)
	ra, rb := ab.Stop(), ba.Stop()
	t.Logf("a->b: gap %v, lost %d; b->a: gap %v, lost %d", ra.MaxGap, ra.Lost, rb.MaxGap, rb.Lost)
	if got := streamLink(t, a, b, 7003); got != "wan2" {
		t.Fatalf("a's flow is on %q after its active link died, want wan2", got)
	}
	// b still sends from whichever of its links its table picks: both are
	// alive and active, so it has not failed over; only a's endpoint changed.
	bps, err := b.Client().Paths()
	if err != nil {
		t.Fatal(err)
	}
	selected := map[string]bool{}
	for _, p := range bps {
		if p.Selected {
			selected[p.Link] = true
			if p.Endpoint != netip.AddrPortFrom(a.WAN[1].Addr, TunnelPort).String() {
				t.Fatalf("b still selects a path to a's dead link: %+v", p)
			}
		}
	}
	if !selected["wan1"] || !selected["wan2"] {
		t.Fatalf("b (active/active) should use both its links, selects %v", selected)
	}
	for _, r := range []StreamResult{ra, rb} {
		if r.MaxGap > 2500*time.Millisecond {
			t.Fatalf("traffic stopped for %v", r.MaxGap)
		}
	}
}
