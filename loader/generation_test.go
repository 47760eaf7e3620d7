package loader

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"

	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/policy/policytest"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// TestGenerationFlipIsAtomic classifies packets while another goroutine
// keeps replacing the rule set. Every decision must be exactly what the
// generation named in its metadata decides: a packet classified against
// half of one set and half of another would show a rule id or transport
// that neither set gives it.
func TestGenerationFlipIsAtomic(t *testing.T) {
	d := openTest(t)
	topo := policytest.Topology()
	for _, p := range []struct {
		prefix string
		dest   policy.Dest
	}{{"198.18.1.0/24", policy.Dest{Site: 1, Kind: policy.DestLocal}}, {"198.18.2.0/24", policy.Dest{Site: 2, Kind: policy.DestMesh}}} {
		if err := d.SetDest(netip.MustParsePrefix(p.prefix), p.dest); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetSettings(policy.Settings{LocalSite: 1, HubSite: 5}); err != nil {
		t.Fatal(err)
	}
	for site, path := range map[uint16]uint16{2: 3, 5: 9} {
		if err := d.SetPath(path, PathInfo{State: PathUp}); err != nil {
			t.Fatal(err)
		}
		slots := make([]uint16, policy.MaglevSlots)
		for i := range slots {
			slots[i] = path
		}
		if err := d.SetSiteTable(site, 0, slots); err != nil {
			t.Fatal(err)
		}
	}
	// Set A: 64 rules, only the last matches (off-cloud); the others drop.
	a := &policy.RuleSet{Default: policy.Action{Transport: policy.Drop}}
	for i := 0; i < 63; i++ {
		a.Rules = append(a.Rules, policy.Rule{Name: "x", Proto: 17, DstPorts: policy.PortRange{Lo: uint16(1000 + i), Hi: uint16(1000 + i)}, Action: policy.Action{Transport: policy.Drop}})
	}
	a.Rules = append(a.Rules, policy.Rule{Name: "a", Proto: 17, Dst: policy.Endpoint{Site: "s2"}, Action: policy.Action{Transport: policy.OffCloud}})
	// Set B: one rule, to the hub.
	b := &policy.RuleSet{Default: policy.Action{Transport: policy.Drop},
		Rules: []policy.Rule{{Name: "b", Proto: -1, Action: policy.Action{Transport: policy.Cloud}}}}
	ca, err := policy.Compile(a, topo)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := policy.Compile(b, topo)
	if err != nil {
		t.Fatal(err)
	}
	want := map[bool]verdict.Meta{ // by "generation is set A"
		true:  {RuleID: 63, PathID: 3, SiteID: 2, Transport: uint8(policy.OffCloud)},
		false: {RuleID: 0, PathID: 9, SiteID: 5, Transport: uint8(policy.Cloud)},
	}
	isA := sync.Map{} // generation -> bool

	gen, err := d.ApplyRules(ca)
	if err != nil {
		t.Fatal(err)
	}
	isA.Store(gen, true)
	const flips = 60
	done := make(chan error, 1)
	go func() {
		for i := 0; i < flips; i++ {
			c, which := cb, false
			if i%2 == 1 {
				c, which = ca, true
			}
			// Record before the flip: a packet may see the new generation
			// the moment ApplyRules writes rule_gen.
			g, err := d.Generation()
			if err == nil {
				isA.Store(g+1, which)
				_, err = d.ApplyRules(c)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	seen := map[bool]int{}
	sport := uint16(1)
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		sport++ // a new flow every time: each packet is classified
		f := policytest.Frame{Src: netip.MustParseAddr("198.18.1.9"), Dst: netip.MustParseAddr("198.18.2.9"), Proto: 17, Sport: sport, Dport: 53}
		_, meta, err := d.TestRun(f.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if meta == nil {
			t.Fatalf("packet not handed to a tunnel (dropped or passed) during flips, sport %d", sport)
		}
		v, ok := isA.Load(meta.Generation)
		if !ok {
			t.Fatalf("metadata names generation %d that was never applied", meta.Generation)
		}
		w := want[v.(bool)]
		w.Generation = meta.Generation
		w.Flags = meta.Flags & verdict.FlagFlowHit // source ports wrap: a hit is fine
		if *meta != w {
			t.Fatalf("generation %d (set A: %v) decided %+v, want %+v", meta.Generation, v, *meta, w)
		}
		seen[v.(bool)]++
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Fatalf("packets saw only one rule set (%v): the test did not race the flips", seen)
	}
	t.Logf("%d packets against set A, %d against set B across %d flips", seen[true], seen[false], flips)
}

// TestRejectedRuleSetChangesNothing: a rule set the compiler refuses never
// reaches the kernel; the running generation keeps deciding.
func TestRejectedRuleSetChangesNothing(t *testing.T) {
	d := openTest(t)
	sc := policytest.RandomScenario(rand.New(rand.NewPCG(7, 7)), 30)
	model := loadScenario(t, d, sc)
	gen, err := d.Generation()
	if err != nil {
		t.Fatal(err)
	}
	frame := (&policytest.Frame{Src: netip.MustParseAddr("198.18.1.9"), Dst: netip.MustParseAddr("198.18.2.9"), Proto: 17, Sport: 1, Dport: 2}).Bytes()
	_, before, err := d.TestRun(frame)
	if err != nil {
		t.Fatal(err)
	}
	bad := &policy.RuleSet{Default: policy.Action{Transport: policy.Cloud}, Rules: append(append([]policy.Rule{}, sc.Rules.Rules...),
		policy.Rule{Name: "saas", Proto: -1, Domains: []string{"example.com"}, Action: policy.Action{Transport: policy.OffCloud}})}
	if _, err := policy.Compile(bad, sc.Topo); err == nil {
		t.Fatal("a complex rule compiled")
	}
	if g, _ := d.Generation(); g != gen {
		t.Fatalf("generation moved from %d to %d", gen, g)
	}
	if err := d.ClearFlows(); err != nil {
		t.Fatal(err)
	}
	model.Flows = map[packet.Key]policy.FlowEntry{}
	_, after, err := d.TestRun(frame)
	if err != nil {
		t.Fatal(err)
	}
	want := model.Classify(frame)
	if (after == nil) != (want.Meta == nil) || (after != nil && (*after != *want.Meta)) || (before == nil) != (after == nil) {
		t.Fatalf("decision changed after a rejected rule set: before %+v after %+v model %+v", before, after, want.Meta)
	}
}
