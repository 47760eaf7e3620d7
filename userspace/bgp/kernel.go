package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the kernel routes xwan installs (rtm_protocol). 176
// (0xb0) is not used by iproute2's rt_protos (bgp is 186, bird 12), so
// `ip route show proto 176` lists exactly xwan's routes, and a restarted
// xwan can sweep what an earlier run left behind.
const RouteProtocol netlink.RouteProtocol = 0xb0

// RouteSink receives changes of the active (best) routes learned from
// neighbours. The kernel table is one sink; the data plane's
// destination-prefix map can be another. Calls come from one goroutine, in
// order; a sink must not block for long. Errors are logged and counted,
// not retried.
type RouteSink interface {
	// RouteAdded: r is the new best route for r.Prefix (new prefix, or a
	// replacement of the previous best, e.g. via the secondary).
	RouteAdded(r Route) error
	// RouteWithdrawn: no learned route is left for r.Prefix; r is the route
	// last passed to RouteAdded.
	RouteWithdrawn(r Route) error
}

// KernelRoutes is the RouteSink that programs the kernel's routing table
// with netlink, in the network namespace of the calling process.
type KernelRoutes struct {
	table, priority int

	mu        sync.Mutex
	installed map[netip.Prefix]Route
}

// NewKernelRoutes returns a sink writing to the given table (0: main) with
// the given route metric (0: DefaultKernelPriority).
func NewKernelRoutes(table, priority int) *KernelRoutes {
	if table == 0 {
		table = MainTable
	}
	if priority == 0 {
		priority = DefaultKernelPriority
	}
	return &KernelRoutes{table: table, priority: priority, installed: map[netip.Prefix]Route{}}
}

func (k *KernelRoutes) route(p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Dst:      &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Protocol: RouteProtocol,
		Table:    k.table,
		Priority: k.priority,
	}
}

// RouteAdded installs or replaces the route (RTM_NEWROUTE with
// NLM_F_REPLACE: one atomic switch of the next hop, no gap).
func (k *KernelRoutes) RouteAdded(r Route) error {
	if !r.NextHop.IsValid() || r.NextHop.Is4() != r.Prefix.Addr().Is4() {
		return fmt.Errorf("kernel route %s: next hop %v is not usable", r.Prefix, r.NextHop)
	}
	nr := k.route(r.Prefix)
	nr.Gw = r.NextHop.AsSlice()
	if err := netlink.RouteReplace(nr); err != nil {
		return fmt.Errorf("kernel route %s via %s: %w", r.Prefix, r.NextHop, err)
	}
	k.mu.Lock()
	k.installed[r.Prefix] = r
	k.mu.Unlock()
	return nil
}

// RouteWithdrawn deletes the route; a route already gone is not an error.
func (k *KernelRoutes) RouteWithdrawn(r Route) error {
	k.mu.Lock()
	delete(k.installed, r.Prefix)
	k.mu.Unlock()
	if err := netlink.RouteDel(k.route(r.Prefix)); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kernel route %s: delete: %w", r.Prefix, err)
	}
	return nil
}

// Installed returns the routes currently installed by this sink.
func (k *KernelRoutes) Installed() []Route {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]Route, 0, len(k.installed))
	for _, r := range k.installed {
		out = append(out, r)
	}
	return out
}

// Sweep deletes every route with RouteProtocol in the table, whoever
// installed it: at start these are leftovers of an earlier run that did not
// stop cleanly. It returns how many it deleted.
func (k *KernelRoutes) Sweep() (int, error) {
	filter := &netlink.Route{Table: k.table, Protocol: RouteProtocol}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return 0, fmt.Errorf("list kernel routes: %w", err)
	}
	n := 0
	var errs []error
	for i := range routes {
		if err := netlink.RouteDel(&routes[i]); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete stale route %s: %w", routes[i].Dst, err))
			continue
		}
		n++
	}
	k.mu.Lock()
	clear(k.installed)
	k.mu.Unlock()
	return n, errors.Join(errs...)
}
