package policy_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/policy/policytest"
)

// rulesFromBytes turns fuzz input into a rule set, 12 bytes a rule.
func rulesFromBytes(b []byte) *policy.RuleSet {
	sites := []string{"", "s1", "s2", "s3"}
	prefixes := []string{"198.18.0.0/15", "198.18.1.0/24", "198.18.1.128/25", "198.18.2.7/32", "2001:db8::/32", "::/0", "0.0.0.0/0"}
	rs := &policy.RuleSet{Default: policy.Action{Transport: policy.Cloud}}
	for len(b) >= 12 && len(rs.Rules) < 300 {
		r := policy.Rule{Name: "f", Proto: int(b[0]) - 1, Action: policy.Action{Transport: policy.Transport(1 + b[1]%5)}}
		endpoint := func(x byte) policy.Endpoint {
			switch x % 3 {
			case 1:
				return policy.Endpoint{Site: sites[1+int(x/3)%3]}
			case 2:
				return policy.Endpoint{Prefix: netip.MustParsePrefix(prefixes[int(x/3)%len(prefixes)])}
			}
			return policy.Endpoint{}
		}
		r.Src, r.Dst = endpoint(b[2]), endpoint(b[3])
		if r.Proto == 6 || r.Proto == 17 {
			lo, hi := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
			if lo > hi {
				lo, hi = hi, lo
			}
			r.DstPorts = policy.PortRange{Lo: lo, Hi: hi}
			r.SrcPorts = policy.PortRange{Lo: uint16(b[8]), Hi: uint16(b[8]) + uint16(b[9])}
		}
		r.VLAN = uint16(b[10]) % 5
		rs.Rules = append(rs.Rules, r)
		b = b[12:]
	}
	return rs
}

// FuzzCompile: any valid rule set compiles, and the compiled tables pick
// the same rule as the rule model for a spread of packets.
func FuzzCompile(f *testing.F) {
	f.Add([]byte("\x07\x00\x05\x04\x01\xbb\x01\xbb\x00\xff\x00\x00"))
	f.Add(make([]byte, 120))
	topo := policytest.Topology()
	f.Fuzz(func(t *testing.T, b []byte) {
		rs := rulesFromBytes(b)
		c, err := policy.Compile(rs, topo)
		if err != nil {
			if rs.Validate(topo) == nil {
				t.Fatalf("valid rule set failed to compile: %v", err)
			}
			return
		}
		for _, a := range []string{"198.18.1.200", "198.18.2.7", "198.19.0.1", "2001:db8::5", "203.0.113.9"} {
			for _, port := range []uint16{0, 80, 443, 65535} {
				for _, proto := range []uint8{6, 17, 1} {
					addr := netip.MustParseAddr(a).As16()
					k := packet.Key{Src: addr, Dst: addr, Proto: proto, Sport: port, Dport: port, VLAN: port % 5}
					if got, want := c.Eval(k, 2, 1), rs.Match(topo, k, 2, 1); got != want {
						t.Fatalf("compiled %d, rules %d for %+v", got, want, k)
					}
				}
			}
		}
	})
}
