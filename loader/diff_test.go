package loader

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/policy/policytest"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// loadScenario writes a scenario into the kernel maps and returns the
// reference model holding the same state.
func loadScenario(t testing.TB, d *Datapath, sc *policytest.Scenario) *policy.Model {
	t.Helper()
	return loadScenarioKeeping(t, d, sc, nil, nil)
}

// loadScenarioKeeping is loadScenario keeping the cached flows of the
// previous scenario (prev) that its destination changes do not touch.
func loadScenarioKeeping(t testing.TB, d *Datapath, sc, prevSc *policytest.Scenario, prev *policy.Model) *policy.Model {
	t.Helper()
	if err := d.SetDests(sc.Dests); err != nil {
		t.Fatal(err)
	}
	if err := d.SetSettings(sc.Settings); err != nil {
		t.Fatal(err)
	}
	for id := uint16(1); id < 2*policytest.NumSites+1; id++ {
		state := PathDown
		if sc.PathUp[id] {
			state = PathUp
		}
		if err := d.SetPath(id, PathInfo{State: state}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.ClearSiteTables(); err != nil {
		t.Fatal(err)
	}
	for k, slots := range sc.Tables {
		if err := d.SetSiteTable(k.Site, k.Link, slots); err != nil {
			t.Fatal(err)
		}
	}
	c, err := policy.Compile(sc.Rules, sc.Topo)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	gen, err := d.ApplyRules(c)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	m := sc.Model()
	m.Generation = gen
	if prev != nil {
		m.Flows = prev.Flows
		m.InvalidateFlows(policy.DestChanges(prevSc.Dests, sc.Dests))
	}
	return m
}

func reproducer(sc *policytest.Scenario, seed uint64, frame []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d\nframe %s\nrules (default %+v):\n", seed, hex.EncodeToString(frame), sc.Rules.Default)
	for i, r := range sc.Rules.Rules {
		fmt.Fprintf(&b, "  %d: src=%s dst=%s proto=%d sport=%v dport=%v vlan=%d -> %+v\n",
			i, r.Src, r.Dst, r.Proto, r.SrcPorts, r.DstPorts, r.VLAN, r.Action)
	}
	fmt.Fprintf(&b, "paths up: %v\n", sc.PathUp)
	if p, reason, ok := packet.ParseEthernet(frame); ok {
		fmt.Fprintf(&b, "parsed: %+v src=%s dst=%s\n", p, p.Key.SrcAddr(), p.Key.DstAddr())
	} else {
		fmt.Fprintf(&b, "parse: %s\n", reason)
	}
	return b.String()
}

// TestDifferential runs random (rule set, packet) cases through the kernel
// program (BPF_PROG_TEST_RUN) and the Go reference model; they must agree
// on the action, the reason counted and every byte of the metadata.
// XWAN_DIFF_CASES overrides the number of cases, XWAN_DIFF_SEED the seed.
func TestDifferential(t *testing.T) {
	d := openTest(t)
	cases := 200_000
	if v, err := strconv.Atoi(os.Getenv("XWAN_DIFF_CASES")); err == nil {
		cases = v
	}
	seed := uint64(rand.Int64())
	if v, err := strconv.ParseUint(os.Getenv("XWAN_DIFF_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (rerun with XWAN_DIFF_SEED=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0x7877616e))

	prev, err := d.ReasonStats()
	if err != nil {
		t.Fatal(err)
	}
	const perScenario = 1000
	var model *policy.Model
	var sc *policytest.Scenario
	var recent [][]byte
	stats := map[verdict.Reason]int{}
	hits := 0
	for n := 0; n < cases; n++ {
		if n%perScenario == 0 {
			keepFlows := n > 0 && r.IntN(2) == 0
			maxRules := pick(r, 8, 40, 200)
			if r.IntN(20) == 0 {
				maxRules = 1500
			}
			prevSc := sc
			sc = policytest.RandomScenario(r, maxRules)
			if keepFlows {
				// The old generation's flows must be re-classified, and
				// those of changed prefixes forgotten.
				model = loadScenarioKeeping(t, d, sc, prevSc, model)
			} else {
				if err := d.ClearFlows(); err != nil {
					t.Fatal(err)
				}
				model = loadScenario(t, d, sc)
				recent = recent[:0]
			}
		}
		var frame []byte
		if len(recent) > 0 && r.IntN(3) == 0 {
			frame = recent[r.IntN(len(recent))] // the same flow again
		} else {
			frame = policytest.RandomFrame(r)
			recent = append(recent, frame)
		}
		if r.IntN(200) == 0 { // a path changes state under cached flows
			id := uint16(3 + r.IntN(2*policytest.NumSites-2))
			model.PathUp[id] = !model.PathUp[id]
			state := PathDown
			if model.PathUp[id] {
				state = PathUp
			}
			if err := d.SetPath(id, PathInfo{State: state}); err != nil {
				t.Fatal(err)
			}
		}

		want := model.Classify(frame)
		stats[want.Reason]++
		if want.Meta != nil && want.Meta.Flags&verdict.FlagFlowHit != 0 {
			hits++
		}
		if len(frame) < 14 {
			// BPF_PROG_TEST_RUN refuses frames shorter than Ethernet, as
			// no driver delivers them; only the model sees these.
			if want.Reason != verdict.TruncEth {
				t.Fatalf("short frame: model says %s\n%s", want.Reason, reproducer(sc, seed, frame))
			}
			continue
		}
		act, meta, err := d.TestRun(frame)
		if err != nil {
			t.Fatalf("case %d: test run: %v\n%s", n, err, reproducer(sc, seed, frame))
		}
		now, err := d.ReasonStats()
		if err != nil {
			t.Fatal(err)
		}
		var got []verdict.Reason
		for i := range now {
			for k := prev[i].Packets; k < now[i].Packets; k++ {
				got = append(got, verdict.Reason(i))
			}
		}
		prev = now
		if act != want.Action || len(got) != 1 || got[0] != want.Reason ||
			(meta == nil) != (want.Meta == nil) || (meta != nil && *meta != *want.Meta) {
			t.Fatalf("case %d disagrees:\n kernel: %s reasons %v meta %+v\n model:  %s reason %s meta %+v\n%s",
				n, act, got, meta, want.Action, want.Reason, want.Meta, reproducer(sc, seed, frame))
		}
	}
	t.Logf("%d cases, %d flow-cache hits; reasons: %v", cases, hits, stats)
	// The generator must reach every branch that matters, or the test
	// proves less than it claims.
	for _, r := range []verdict.Reason{verdict.NoXSK, verdict.NotIP, verdict.NoRoute, verdict.Local,
		verdict.Direct, verdict.RuleDrop, verdict.NoPath, verdict.TruncEth, verdict.TruncVLAN,
		verdict.VLANDepth, verdict.TruncIPv4, verdict.BadIPv4, verdict.TruncIPv6, verdict.BadIPv6Ext,
		verdict.TruncL4} {
		if cases >= 100_000 && stats[r] == 0 {
			t.Errorf("no case reached reason %s", r)
		}
	}
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }
