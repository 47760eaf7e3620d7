package policy

import (
	"math/bits"

	"github.com/xwan-dev/xwan/userspace/packet"
)

// Eval classifies a key against compiled tables exactly as the kernel's
// bit-vector classifier does (bpf/include/rules.h). Tests use it to check
// the compiler against RuleSet.Match without a kernel.
func (c *Compiled) Eval(k packet.Key, srcSite, dstSite uint16) int {
	lpm := func(pcs []PrefixClass, a Addr16) uint32 {
		best, class := -1, uint32(0)
		for _, pc := range pcs {
			if pc.Bits > best && Contains16(pc.Addr, pc.Bits, a) {
				best, class = pc.Bits, pc.Class
			}
		}
		return class
	}
	classes := [8]uint32{
		lpm(c.SrcPrefixes, k.Src), lpm(c.DstPrefixes, k.Dst),
		c.SrcSite[srcSite%MaxSites], c.DstSite[dstSite%MaxSites],
		c.Proto[k.Proto], c.Sport[k.Sport], c.Dport[k.Dport], c.VLAN[k.VLAN&0xfff],
	}
	cand := ^uint64(0)
	for _, cl := range classes {
		cand &= c.Bitmaps[cl].Summary
	}
	for w := 0; w < BitmapWords && cand != 0; w, cand = w+1, cand>>1 {
		if cand&1 == 0 {
			continue
		}
		m := ^uint64(0)
		for _, cl := range classes {
			m &= c.Bitmaps[cl].Words[w]
		}
		if m != 0 {
			return w*64 + bits.TrailingZeros64(m)
		}
	}
	return DefaultRule
}
