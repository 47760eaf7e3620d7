package loader

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/userspace/policy"
)

// Generation returns the rule set generation the kernel uses now.
func (d *Datapath) Generation() (uint32, error) {
	var g uint32
	err := d.objs.RuleGen.Lookup(uint32(0), &g)
	return g, err
}

// ApplyRules installs a compiled rule set atomically: it fills the idle
// generation slot, then flips rule_gen. Packets read rule_gen once, so each
// is classified against the old set or the new one, never a mix. Flows
// cached under the old generation are re-classified on their next packet.
// On error the running generation is untouched.
func (d *Datapath) ApplyRules(c *policy.Compiled) (uint32, error) {
	gen, err := d.Generation()
	if err != nil {
		return 0, err
	}
	next := gen + 1
	slot := next & 1
	if err := d.fillSlot(slot, c); err != nil {
		return gen, fmt.Errorf("writing rule generation %d: %w", next, err)
	}
	if err := d.objs.RuleGen.Put(uint32(0), next); err != nil {
		return gen, err
	}
	return next, nil
}

func (d *Datapath) fillSlot(slot uint32, c *policy.Compiled) error {
	if len(c.Actions) != c.NumRules+1 || c.NumRules > policy.MaxRules {
		return errors.New("compiled rule set is inconsistent")
	}
	arrays := []struct {
		m      *ebpf.Map
		size   int
		values []uint32
	}{
		{d.objs.RuleProto, 256, c.Proto},
		{d.objs.RuleSport, 65536, c.Sport},
		{d.objs.RuleDport, 65536, c.Dport},
		{d.objs.RuleVlan, 4096, c.VLAN},
		{d.objs.RuleSrcSite, policy.MaxSites, c.SrcSite},
		{d.objs.RuleDstSite, policy.MaxSites, c.DstSite},
	}
	for _, a := range arrays {
		if len(a.values) != a.size {
			return fmt.Errorf("compiled table has %d entries, want %d", len(a.values), a.size)
		}
		if err := batchPut(a.m, int(slot)*a.size, a.values); err != nil {
			return err
		}
	}
	bitmaps := make([]RuleBitmap, len(c.Bitmaps))
	for i, b := range c.Bitmaps {
		bitmaps[i] = RuleBitmap{Summary: b.Summary, Words: b.Words}
	}
	if err := batchPut(d.objs.RuleBitmaps, int(slot)*policy.MaxClasses, bitmaps); err != nil {
		return err
	}
	actions := make([]RuleAction, policy.MaxRules+1)
	for i, a := range c.Actions[:c.NumRules] {
		actions[i] = RuleAction{Transport: uint8(a.Transport), Secondary: uint8(a.Secondary), PrefLink: a.LinkID}
	}
	def := c.Actions[c.NumRules]
	actions[policy.DefaultRule] = RuleAction{Transport: uint8(def.Transport), Secondary: uint8(def.Secondary), PrefLink: def.LinkID}
	if err := batchPut(d.objs.RuleActions, int(slot)*(policy.MaxRules+1), actions); err != nil {
		return err
	}
	for _, t := range []struct {
		m        *ebpf.Map
		prefixes []policy.PrefixClass
	}{{d.objs.RuleSrcPrefix, c.SrcPrefixes}, {d.objs.RuleDstPrefix, c.DstPrefixes}} {
		if err := clearTrieSlot(t.m, slot); err != nil {
			return err
		}
		for _, p := range t.prefixes {
			k := xdplanRulePrefixKey{Prefixlen: uint32(8 + p.Bits), Slot: uint8(slot), Addr: p.Addr}
			if err := t.m.Put(&k, p.Class); err != nil {
				return fmt.Errorf("rule prefix trie: %w", err)
			}
		}
	}
	return nil
}

func batchPut[V any](m *ebpf.Map, base int, values []V) error {
	keys := make([]uint32, len(values))
	for i := range keys {
		keys[i] = uint32(base + i)
	}
	const chunk = 8192
	for lo := 0; lo < len(keys); lo += chunk {
		hi := min(lo+chunk, len(keys))
		if _, err := m.BatchUpdate(keys[lo:hi], values[lo:hi], nil); err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
	}
	return nil
}

func clearTrieSlot(m *ebpf.Map, slot uint32) error {
	var k xdplanRulePrefixKey
	var v uint32
	var stale []xdplanRulePrefixKey
	it := m.Iterate()
	for it.Next(&k, &v) {
		if uint32(k.Slot) == slot {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}
