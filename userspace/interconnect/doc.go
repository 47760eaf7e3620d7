// Package interconnect holds the interop tests of xwand's cloud
// interconnect (docs/bgp.md): the real xwand daemon, built by TestMain, in
// a gateway namespace, against BIRD 2 playing Azure's two ExpressRoute
// routers (AS 12076) in another, with a LAN host namespace that also runs
// the tests' webhook receiver. The package has no code of its own; the
// tests and their lab are in the _test.go files.
//
//	host (LAN host, webhook)        gateway (xwand)                     az (BIRD, AS 12076)
//	eth0 198.18.10.10/24  <---->  lan0 198.18.10.1/24
//	upl  198.18.100.1/24  <---->  wan1 198.18.100.2/24
//	                              er1  169.254.10.5/30  <---->  msee1 169.254.10.6/30  (primary, metric 90)
//	                              er2  169.254.10.1/30  <---->  msee2 169.254.10.2/30  (secondary, metric 100)
//	                                                             lo 198.18.200.1/32 (a VNet VM),
//	                                                             198.18.201.0/24 blackholed
//
// BIRD announces the VNets 198.18.200.0/24 and 198.18.201.0/24 (from
// 198.18.200.0/23) with MD5 on both sessions and exports what it learns by
// BGP to its namespace's kernel, so LAN traffic to the VNets comes back.
package interconnect
