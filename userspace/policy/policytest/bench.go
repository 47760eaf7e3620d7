package policytest

import (
	"math/rand/v2"
	"net/netip"

	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/policy"
)

// BenchFrame is the benchmark's packet: TCP from site 1 to site 2, port 443,
// source port sport.
func BenchFrame(sport uint16) []byte {
	f := Frame{Src: netip.MustParseAddr("198.18.1.10"), Dst: netip.MustParseAddr("198.18.2.20"),
		Proto: 6, Sport: sport, Dport: 443}
	return f.Bytes()
}

// BenchSportLo and BenchSportHi bound the source ports of the benchmark's
// distinct flows.
const BenchSportLo, BenchSportHi = 20000, 40000

// BenchRuleSet returns n rules of which only the last matches the bench
// packets (for every source port in the bench range): the worst place for a
// first-match classifier. The others are random simple rules from a fixed
// seed, so every run measures the same set.
func BenchRuleSet(n int) *policy.RuleSet {
	topo := Topology()
	sites := []string{"s1", "s2", "s3", "s4", "s5", "s6"}
	r := rand.New(rand.NewPCG(uint64(n), 42))
	probes := []packet.Key{}
	for _, sp := range []uint16{BenchSportLo, BenchSportHi - 1} {
		p, _, _ := packet.ParseEthernet(BenchFrame(sp))
		probes = append(probes, p.Key)
	}
	rs := &policy.RuleSet{Default: policy.Action{Transport: policy.Cloud}}
	for len(rs.Rules) < n-1 {
		rule := RandomRule(r, sites, len(rs.Rules))
		one := &policy.RuleSet{Rules: []policy.Rule{rule}}
		matches := false
		for _, k := range probes {
			if one.Match(topo, k, 1, 2) == 0 {
				matches = true
			}
		}
		if !matches {
			rs.Rules = append(rs.Rules, rule)
		}
	}
	rs.Rules = append(rs.Rules, policy.Rule{
		Name: "bench", Src: policy.Endpoint{Site: "s1"}, Dst: policy.Endpoint{Site: "s2"},
		Proto: 6, DstPorts: policy.PortRange{Lo: 443, Hi: 443},
		Action: policy.Action{Transport: policy.OffCloud},
	})
	return rs
}
