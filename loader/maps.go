package loader

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/userspace/packet"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// Exported names for the kernel's types (bpf/include/xwan_types.h).
type (
	FlowKey    = xdplanFlowKey
	FlowEntry  = xdplanFlowEntry
	PathInfo   = xdplanPathInfo
	Counter    = xdplanCounter
	Settings   = xdplanXwanSettings
	DestInfo   = xdplanDestInfo
	RuleAction = xdplanRuleAction
	RuleBitmap = xdplanRuleBitmap
)

// Path states in PathInfo.State.
const (
	PathUnused uint8 = 0
	PathUp     uint8 = 1
	PathDown   uint8 = 2
)

func prefixKey(p netip.Prefix) xdplanPrefixKey {
	a, bits := policy.Mapped(p)
	return xdplanPrefixKey{Prefixlen: uint32(bits), Addr: a}
}

// SetDest maps a destination prefix to a site and kind, and deletes the
// cached flows it may change (the LAN program trusts cached flows).
func (d *Datapath) SetDest(p netip.Prefix, dest policy.Dest) error {
	k := prefixKey(p)
	v := DestInfo{SiteId: dest.Site, Kind: uint8(dest.Kind)}
	if err := d.objs.DestPrefixes.Put(&k, &v); err != nil {
		return err
	}
	return d.InvalidateFlows([]netip.Prefix{p})
}

// DeleteDest removes a destination prefix and the flows it may change.
func (d *Datapath) DeleteDest(p netip.Prefix) error {
	k := prefixKey(p)
	if err := d.objs.DestPrefixes.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return d.InvalidateFlows([]netip.Prefix{p})
}

// SetDests makes the destination prefixes equal to dests, touching only
// what differs, and deletes the flows of the changed prefixes in one pass.
func (d *Datapath) SetDests(dests map[netip.Prefix]policy.Dest) error {
	old, err := d.Dests()
	if err != nil {
		return err
	}
	changed := policy.DestChanges(old, dests)
	for _, p := range changed {
		k := prefixKey(p)
		if v, ok := dests[p]; ok {
			di := DestInfo{SiteId: v.Site, Kind: uint8(v.Kind)}
			err = d.objs.DestPrefixes.Put(&k, &di)
		} else {
			err = d.objs.DestPrefixes.Delete(&k)
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return d.InvalidateFlows(changed)
}

// InvalidateFlows deletes every cached flow whose source or destination is
// inside one of the prefixes; their next packet is classified afresh.
func (d *Datapath) InvalidateFlows(prefixes []netip.Prefix) error {
	if len(prefixes) == 0 {
		return nil
	}
	var in policy.PrefixTable[bool]
	for _, p := range prefixes {
		in.Set(p, true)
	}
	var stale []FlowKey
	var k FlowKey
	var e FlowEntry
	it := d.objs.Flows.Iterate()
	for it.Next(&k, &e) {
		_, src := in.Lookup(k.Saddr)
		_, dst := in.Lookup(k.Daddr)
		if src || dst {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return d.deleteFlows(stale)
}

func (d *Datapath) deleteFlows(keys []FlowKey) error {
	for _, k := range keys {
		if err := d.objs.Flows.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// Dests lists the destination prefixes.
func (d *Datapath) Dests() (map[netip.Prefix]policy.Dest, error) {
	out := map[netip.Prefix]policy.Dest{}
	var k xdplanPrefixKey
	var v DestInfo
	it := d.objs.DestPrefixes.Iterate()
	for it.Next(&k, &v) {
		a := netip.AddrFrom16(k.Addr)
		bits := int(k.Prefixlen)
		if a.Is4In6() && bits >= 96 {
			a, bits = a.Unmap(), bits-96
		}
		out[netip.PrefixFrom(a, bits)] = policy.Dest{Site: v.SiteId, Kind: policy.DestKind(v.Kind)}
	}
	return out, it.Err()
}

// SetSettings writes the site-wide ids.
func (d *Datapath) SetSettings(s policy.Settings) error {
	v := Settings{LocalSite: s.LocalSite, HubSite: s.HubSite, BackhaulSite: s.BackhaulSite}
	return d.objs.Settings.Put(uint32(0), &v)
}

// SetPath writes a path's entry.
func (d *Datapath) SetPath(id uint16, p PathInfo) error {
	if id == 0 || id >= policy.MaxPaths {
		return fmt.Errorf("path id %d outside 1-%d", id, policy.MaxPaths-1)
	}
	return d.objs.Paths.Put(uint32(id), &p)
}

// Path reads a path's entry.
func (d *Datapath) Path(id uint16) (PathInfo, error) {
	var p PathInfo
	err := d.objs.Paths.Lookup(uint32(id), &p)
	return p, err
}

// SetSiteTable writes the Maglev table of a site's paths (link 0: all of
// them; otherwise those on one local link).
func (d *Datapath) SetSiteTable(site uint16, linkID uint8, slots []uint16) error {
	if len(slots) != policy.MaglevSlots {
		return fmt.Errorf("site table has %d slots, want %d", len(slots), policy.MaglevSlots)
	}
	k := xdplanSiteLinkKey{SiteId: site, LinkId: linkID}
	var v xdplanSiteTable
	copy(v.Slots[:], slots)
	return d.objs.SitePaths.Put(&k, &v)
}

// DeleteSiteTable removes a site's table.
func (d *Datapath) DeleteSiteTable(site uint16, linkID uint8) error {
	k := xdplanSiteLinkKey{SiteId: site, LinkId: linkID}
	return d.objs.SitePaths.Delete(&k)
}

// SiteTable reads a site's table.
func (d *Datapath) SiteTable(site uint16, linkID uint8) ([]uint16, error) {
	k := xdplanSiteLinkKey{SiteId: site, LinkId: linkID}
	var v xdplanSiteTable
	if err := d.objs.SitePaths.Lookup(&k, &v); err != nil {
		return nil, err
	}
	return append([]uint16(nil), v.Slots[:]...), nil
}

// KeyOf converts a parsed flow key to the kernel's.
func KeyOf(k packet.Key) FlowKey {
	return FlowKey{Saddr: k.Src, Daddr: k.Dst, Sport: k.Sport, Dport: k.Dport, Vlan: k.VLAN, Proto: k.Proto}
}

// Flow is one flow cache entry.
type Flow struct {
	Key   FlowKey
	Entry FlowEntry
}

// Flows lists the flow cache.
func (d *Datapath) Flows() ([]Flow, error) {
	var out []Flow
	var f Flow
	it := d.objs.Flows.Iterate()
	for it.Next(&f.Key, &f.Entry) {
		out = append(out, f)
	}
	return out, it.Err()
}

// LookupFlow reads one flow.
func (d *Datapath) LookupFlow(k FlowKey) (FlowEntry, error) {
	var e FlowEntry
	err := d.objs.Flows.Lookup(&k, &e)
	return e, err
}

// SetFlow writes one flow (pathsel moves existing flows this way).
func (d *Datapath) SetFlow(k FlowKey, e FlowEntry) error { return d.objs.Flows.Put(&k, &e) }

// DeleteFlow removes one flow; its next packet is classified afresh.
func (d *Datapath) DeleteFlow(k FlowKey) error { return d.objs.Flows.Delete(&k) }

// ClearFlows empties the flow cache.
func (d *Datapath) ClearFlows() error {
	var keys []FlowKey
	var k FlowKey
	var e FlowEntry
	it := d.objs.Flows.Iterate()
	for it.Next(&k, &e) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return err
	}
	return d.deleteFlows(keys)
}

// sumPerCPU reads the first n counters of a per-CPU array in one batch
// and sums each over the CPUs.
func sumPerCPU(m *ebpf.Map, n int) ([]Counter, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	keys := make([]uint32, n)
	per := make([]Counter, n*ncpu)
	var cursor ebpf.MapBatchCursor
	got, err := m.BatchLookup(&cursor, keys, per, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("%s: read %d counters, want %d", m, got, n)
	}
	out := make([]Counter, n)
	for i := range out {
		for _, c := range per[i*ncpu : (i+1)*ncpu] {
			out[i].Packets += c.Packets
			out[i].Bytes += c.Bytes
		}
	}
	return out, nil
}

// ReasonStats returns packets and bytes per verdict reason, all CPUs summed.
func (d *Datapath) ReasonStats() ([]Counter, error) {
	return sumPerCPU(d.objs.StatsReasons, int(verdict.NumReasons))
}

// RuleStats returns packets and bytes per rule id (the last is the default).
func (d *Datapath) RuleStats() ([]Counter, error) {
	return sumPerCPU(d.objs.StatsRules, policy.MaxRules+1)
}

// PathStats returns packets and bytes per path id.
func (d *Datapath) PathStats() ([]Counter, error) {
	return sumPerCPU(d.objs.StatsPaths, policy.MaxPaths)
}

// XSKMap returns the XSKMAP that AF_XDP sockets register in.
func (d *Datapath) XSKMap() *ebpf.Map { return d.objs.Xsks }
