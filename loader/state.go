package loader

import (
	"errors"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/userspace/policy"
)

// ClearDests removes every destination prefix.
func (d *Datapath) ClearDests() error {
	dests, err := d.Dests()
	if err != nil {
		return err
	}
	for p := range dests {
		if err := d.DeleteDest(p); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// ClearSiteTables removes every site path table.
func (d *Datapath) ClearSiteTables() error {
	var k xdplanSiteLinkKey
	var v xdplanSiteTable
	var keys []xdplanSiteLinkKey
	it := d.objs.SitePaths.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range keys {
		if err := d.objs.SitePaths.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// SetDests replaces the destination prefixes.
func (d *Datapath) SetDests(dests map[netip.Prefix]policy.Dest) error {
	if err := d.ClearDests(); err != nil {
		return err
	}
	for p, v := range dests {
		if err := d.SetDest(p, v); err != nil {
			return err
		}
	}
	return nil
}
