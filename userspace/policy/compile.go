package policy

import (
	"fmt"
	"net/netip"
	"sort"
)

// ActionIDs is a rule action with names resolved to kernel ids.
type ActionIDs struct {
	Transport Transport
	Secondary Secondary
	LinkID    uint8
}

// Bitmap is one class's rule bit vector (struct rule_bitmap).
type Bitmap struct {
	Summary uint64
	Words   [BitmapWords]uint64
}

// PrefixClass maps one mapped prefix to a class.
type PrefixClass struct {
	Addr  Addr16
	Bits  int
	Class uint32
}

// Compiled is a rule set turned into the contents of the rule maps of one
// generation slot. Field tables map a field value to a class id; Bitmaps
// maps a class id to the rules that accept it.
type Compiled struct {
	NumRules    int
	Actions     []ActionIDs // NumRules entries, then the default action
	Proto       []uint32    // 256
	Sport       []uint32    // 65536
	Dport       []uint32    // 65536
	VLAN        []uint32    // 4096
	SrcSite     []uint32    // MaxSites
	DstSite     []uint32    // MaxSites
	SrcPrefixes []PrefixClass
	DstPrefixes []PrefixClass
	Bitmaps     []Bitmap
}

type classes struct {
	ids  map[[BitmapWords]uint64]uint32
	list []Bitmap
}

func (c *classes) id(words [BitmapWords]uint64) uint32 {
	if id, ok := c.ids[words]; ok {
		return id
	}
	b := Bitmap{Words: words}
	for w, v := range words {
		if v != 0 {
			b.Summary |= 1 << uint(w)
		}
	}
	id := uint32(len(c.list))
	c.ids[words] = id
	c.list = append(c.list, b)
	return id
}

func set(words *[BitmapWords]uint64, r int) { words[r/64] |= 1 << uint(r%64) }

// Compile validates rs and builds the map contents. It never touches the
// kernel: a rule set that fails here leaves the running one in place.
func Compile(rs *RuleSet, topo Topology) (*Compiled, error) {
	if err := rs.Validate(topo); err != nil {
		return nil, err
	}
	c := &Compiled{NumRules: len(rs.Rules)}
	cl := &classes{ids: map[[BitmapWords]uint64]uint32{}}
	action := func(a Action) ActionIDs {
		return ActionIDs{Transport: a.Transport, Secondary: a.Secondary, LinkID: topo.Links[a.PreferredLink]}
	}
	for _, r := range rs.Rules {
		c.Actions = append(c.Actions, action(r.Action))
	}
	c.Actions = append(c.Actions, action(rs.Default))

	// Small domains: compute the vector of every value.
	table := func(n int, accepts func(r *Rule, v int) bool) []uint32 {
		out := make([]uint32, n)
		for v := 0; v < n; v++ {
			var words [BitmapWords]uint64
			for i := range rs.Rules {
				if accepts(&rs.Rules[i], v) {
					set(&words, i)
				}
			}
			out[v] = cl.id(words)
		}
		return out
	}
	c.Proto = table(256, func(r *Rule, v int) bool { return r.Proto < 0 || r.Proto == v })
	site := func(e Endpoint, v int) bool { return e.Site == "" || int(topo.Sites[e.Site]) == v }
	c.SrcSite = table(MaxSites, func(r *Rule, v int) bool { return site(r.Src, v) })
	c.DstSite = table(MaxSites, func(r *Rule, v int) bool { return site(r.Dst, v) })
	c.VLAN = vlanTable(rs, cl)
	c.Sport = portTable(rs, cl, func(r *Rule) PortRange { return r.SrcPorts })
	c.Dport = portTable(rs, cl, func(r *Rule) PortRange { return r.DstPorts })
	c.SrcPrefixes = prefixTable(rs, cl, func(r *Rule) netip.Prefix { return r.Src.Prefix })
	c.DstPrefixes = prefixTable(rs, cl, func(r *Rule) netip.Prefix { return r.Dst.Prefix })
	if len(cl.list) > MaxClasses {
		return nil, fmt.Errorf("rule set needs %d field classes, more than the kernel classifier's %d: use fewer distinct port ranges and prefixes", len(cl.list), MaxClasses)
	}
	c.Bitmaps = cl.list
	return c, nil
}

func vlanTable(rs *RuleSet, cl *classes) []uint32 {
	var anyVLAN [BitmapWords]uint64
	byVLAN := map[uint16][BitmapWords]uint64{}
	for i, r := range rs.Rules {
		if r.VLAN == 0 {
			set(&anyVLAN, i)
		}
	}
	for i, r := range rs.Rules {
		if r.VLAN != 0 {
			w, ok := byVLAN[r.VLAN]
			if !ok {
				w = anyVLAN
			}
			set(&w, i)
			byVLAN[r.VLAN] = w
		}
	}
	out := make([]uint32, 4096)
	anyID := cl.id(anyVLAN)
	for v := range out {
		out[v] = anyID
	}
	for v, w := range byVLAN {
		out[v] = cl.id(w)
	}
	return out
}

// portTable splits the port space at every range boundary; each elementary
// interval is one class.
func portTable(rs *RuleSet, cl *classes, field func(*Rule) PortRange) []uint32 {
	cuts := map[int]bool{0: true}
	for i := range rs.Rules {
		r := field(&rs.Rules[i]).norm()
		cuts[int(r.Lo)] = true
		cuts[int(r.Hi)+1] = true
	}
	starts := make([]int, 0, len(cuts))
	for p := range cuts {
		if p <= 65535 {
			starts = append(starts, p)
		}
	}
	sort.Ints(starts)
	out := make([]uint32, 65536)
	for k, lo := range starts {
		hi := 65535
		if k+1 < len(starts) {
			hi = starts[k+1] - 1
		}
		var words [BitmapWords]uint64
		for i := range rs.Rules {
			if field(&rs.Rules[i]).Contains(uint16(lo)) {
				set(&words, i)
			}
		}
		id := cl.id(words)
		for p := lo; p <= hi; p++ {
			out[p] = id
		}
	}
	return out
}

// prefixTable gives every rule prefix (and /0) a class holding the rules
// whose prefix contains it: the longest match for an address then carries
// exactly the rules that accept the address.
func prefixTable(rs *RuleSet, cl *classes, field func(*Rule) netip.Prefix) []PrefixClass {
	seen := map[prefix16]bool{{bits: 0}: true}
	for i := range rs.Rules {
		if p := field(&rs.Rules[i]); p.IsValid() {
			a, bits := Mapped(p)
			seen[prefix16{a, bits}] = true
		}
	}
	keys := make([]prefix16, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].bits != keys[j].bits {
			return keys[i].bits < keys[j].bits
		}
		return string(keys[i].addr[:]) < string(keys[j].addr[:])
	})
	out := make([]PrefixClass, 0, len(keys))
	for _, k := range keys {
		var words [BitmapWords]uint64
		for i := range rs.Rules {
			p := field(&rs.Rules[i])
			if !p.IsValid() {
				set(&words, i)
				continue
			}
			a, bits := Mapped(p)
			if bits <= k.bits && Contains16(a, bits, k.addr) {
				set(&words, i)
			}
		}
		out = append(out, PrefixClass{Addr: k.addr, Bits: k.bits, Class: cl.id(words)})
	}
	return out
}
