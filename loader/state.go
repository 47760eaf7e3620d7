package loader

import (
	"errors"

	"github.com/cilium/ebpf"
)

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
