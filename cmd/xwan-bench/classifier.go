package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/loader"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/policy/policytest"
	"github.com/xwan-dev/xwan/userspace/verdict"
	"golang.org/x/sys/unix"
)

const (
	repeat = 2_000_000 // runs per timed call for the baseline and hits
	rounds = 7         // rounds over every case; medians are reported
	misses = 20_000    // distinct flows per miss round
)

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// repeated times prog on one frame, `repeat` runs per call, in the kernel,
// and returns the median of calls.
func repeated(prog *ebpf.Program, frame []byte, calls int) (float64, error) {
	var per []float64
	for i := 0; i < calls; i++ {
		_, d, err := prog.Benchmark(frame, repeat, nil)
		if err != nil {
			return 0, err
		}
		per = append(per, float64(d.Nanoseconds()))
	}
	return median(per), nil
}

// single times prog once per frame (BPF_PROG_TEST_RUN with repeat 1) and
// returns the median run. Each run's duration includes the kernel's timer
// reads, which the caller measures on the baseline and subtracts; the
// median keeps interrupts and migrations out of the figure.
func single(prog *ebpf.Program, frames [][]byte) (float64, error) {
	per := make([]float64, 0, len(frames))
	for _, f := range frames {
		_, d, err := prog.Benchmark(f, 1, nil)
		if err != nil {
			return 0, err
		}
		per = append(per, float64(d.Nanoseconds()))
	}
	return median(per), nil
}

func benchClassifier(w io.Writer) error {
	// One CPU for the whole run: test runs execute on the caller's CPU.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set unix.CPUSet
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return err
	}
	base, err := loader.BaselineProgram()
	if err != nil {
		return fmt.Errorf("loading the baseline: %w", err)
	}
	defer base.Close()

	// One data path per rule count, all loaded at once, so every round
	// measures every case back to back: the ratios compare figures taken
	// under the same conditions, not minutes apart.
	sizes := []int{1, 64, 1024, 4096}
	paths := make([]*loader.Datapath, len(sizes))
	sc := benchState()
	for i, n := range sizes {
		root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("xwan-bench-%d-%d", os.Getpid(), n))
		d, err := loader.Open(loader.Options{PinRoot: root, FlowTableSize: 2 * misses})
		if err != nil {
			return err
		}
		defer loader.Cleanup(root)
		defer d.Close()
		if err := loadState(d, sc, policytest.BenchRuleSet(n)); err != nil {
			return err
		}
		paths[i] = d
	}

	hitFrame := policytest.BenchFrame(policytest.BenchSportHi)
	missFrames := make([][]byte, misses)
	for i := range missFrames {
		missFrames[i] = policytest.BenchFrame(uint16(policytest.BenchSportLo + i))
	}
	var baselines []float64
	miss := make([][]float64, len(sizes))
	hit := make([][]float64, len(sizes))
	for round := 0; round < rounds; round++ {
		baseline, err := repeated(base, hitFrame, 1)
		if err != nil {
			return err
		}
		// What a repeat-1 run adds over a repeated one (timer reads and
		// set-up inside the timed region), on the baseline program.
		baseSingle, err := single(base, missFrames)
		if err != nil {
			return err
		}
		overhead := baseSingle - baseline
		baselines = append(baselines, baseline)
		for i, d := range paths {
			if err := d.ClearFlows(); err != nil {
				return err
			}
			ns, err := single(d.Program(), missFrames)
			if err != nil {
				return err
			}
			// Every run must have missed and inserted its own flow.
			if c, err := d.FlowCount(); err != nil || c != misses {
				return fmt.Errorf("rules=%d: %d flows cached after %d distinct misses (%v)", sizes[i], c, misses, err)
			}
			miss[i] = append(miss[i], ns-overhead)
			if _, _, err := d.TestRun(hitFrame); err != nil {
				return err
			}
			act, meta, err := d.TestRun(hitFrame)
			if err != nil || meta == nil || meta.Flags&verdict.FlagFlowHit == 0 || int(meta.RuleID) != sizes[i]-1 {
				return fmt.Errorf("rules=%d: hit frame not decided by the flow cache on rule %d: %v %+v %v", sizes[i], sizes[i]-1, act, meta, err)
			}
			h, err := repeated(d.Program(), hitFrame, 1)
			if err != nil {
				return err
			}
			hit[i] = append(hit[i], h)
		}
	}
	fmt.Fprintf(w, "classify baseline=xdp_pass ns_per_pkt=%.1f\n", median(baselines))
	for i, n := range sizes {
		fmt.Fprintf(w, "classify rules=%d flow=miss ns_per_pkt=%.1f\n", n, median(miss[i]))
		fmt.Fprintf(w, "classify rules=%d flow=hit ns_per_pkt=%.1f\n", n, median(hit[i]))
	}
	return nil
}

func benchState() *policytest.Scenario {
	sc := &policytest.Scenario{
		Topo:     policytest.Topology(),
		Settings: policy.Settings{LocalSite: 1, HubSite: 5, BackhaulSite: 6},
	}
	return sc
}

// loadState installs the bench topology (site 1 local, 2..6 remote, one
// path up to each) and the rule set.
func loadState(d *loader.Datapath, sc *policytest.Scenario, rs *policy.RuleSet) error {
	for i := 1; i <= policytest.NumSites; i++ {
		kind := policy.DestMesh
		if i == 1 {
			kind = policy.DestLocal
		}
		for _, p := range []func(int) netip.Prefix{policytest.SitePrefix4, policytest.SitePrefix6} {
			if err := d.SetDest(p(i), policy.Dest{Site: uint16(i), Kind: kind}); err != nil {
				return err
			}
		}
		if i == 1 {
			continue
		}
		if err := d.SetPath(uint16(i), loader.PathInfo{State: loader.PathUp, SiteId: uint16(i), LinkId: 1}); err != nil {
			return err
		}
		slots := make([]uint16, policy.MaglevSlots)
		for s := range slots {
			slots[s] = uint16(i)
		}
		if err := d.SetSiteTable(uint16(i), 0, slots); err != nil {
			return err
		}
	}
	if err := d.SetSettings(sc.Settings); err != nil {
		return err
	}
	c, err := policy.Compile(rs, sc.Topo)
	if err != nil {
		return err
	}
	_, err = d.ApplyRules(c)
	return err
}
