// Package config reads xwand's YAML configuration.
//
// Every error names the file, the 1-based line and the field, in the form
// FILE:LINE: FIELD: message, for example
//
//	site-a.yaml:14: wan[1].precedence: must be 1 (active), 2 (passive) or 3 (last resort), got 4
//
// and Load reports every problem it finds (one per line, in line order; the
// error is an Errors value listing *FieldError), not only the first. A
// configuration that fails to load changes nothing: the daemon keeps
// running on the one it had. Unknown keys are errors (with a "did you mean"
// for near misses), because a misspelt optional key would otherwise be
// silently ignored.
//
// # Schema
//
// testdata/config/full.yaml at the root of the repository is a commented
// example with every key; testdata/config/minimal.yaml is the smallest
// useful one. Keys are snake_case:
//
//	site: site-a                  # required; a DNS label (pki.ValidateSiteName), as in the certificate
//	role: edge                    # edge | hub
//	lan:
//	  interfaces: [lan0]          # required, at least one Linux interface
//	  prefixes: [198.18.10.0/24]  # required, at least one; no host bits
//	wan:                          # required, 1 to 15 links
//	  - name: wan1                # required, unique, [a-z0-9-]
//	    interface: wan1           # required; not a LAN interface
//	    address: 198.18.100.2     # tunnel source address
//	    precedence: 1             # 1 active | 2 passive | 3 last resort
//	    bandwidth: {up: 100Mbit, down: 50Mbit}  # bit, Kbit, Mbit, Gbit (SI, any case, decimals allowed);
//	                                            # both required and > 0 for precedence 1 and 2
//	    off_cloud: true           # must not be true on precedence 3
//	    public: 203.0.113.5:4754  # static public IP:port (port forwarding on the router)
//	hub: hub                      # a peer's site; not allowed with role: hub
//	peers:                        # at most 1,022
//	  - site: site-b              # required, unique, not this site
//	    prefixes: [198.18.20.0/24]  # no prefix may belong to two sites (nested prefixes may)
//	    links:                    # required for the hub, and for every peer when there is no hub
//	      - {name: wan1, endpoint: 198.18.101.2:4754}  # names unique per peer; endpoints unique overall
//	tunnel: {port: 4754, keepalive: 10s, mss_clamp: true, probe_interval: 300ms}
//	rules:                        # first match wins; at most 4,096
//	  - name: backups             # required, unique
//	    source: any               # any | {prefix: P} | {site: S} (this site or a peer)
//	    destination: {site: site-b}
//	    protocol: tcp             # any | tcp | udp | icmp | icmpv6 | 0-255
//	    source_ports: 1000-2000   # 443, "443" or "lo-hi"; tcp and udp only
//	    destination_ports: 873
//	    vlan: 10                  # outer VLAN id 1-4094
//	    transport: off-cloud      # required: off-cloud | cloud | backhaul | direct | drop
//	    secondary: automatic      # automatic | none | cloud
//	    link: wan1                # preferred local link; must carry off-cloud for off-cloud rules
//	    applications: [...]       # accepted only to be refused: a complex rule
//	    categories: [...]         #   cannot be evaluated by the kernel
//	    domains: [...]
//	default: {transport: cloud, secondary: automatic, link: wan1}
//	certificates: {ca: ca.pem, cert: site-a.pem, key: site-a-key.pem}  # required
//	api: {socket: /run/xwan/xwand.sock}
//	metrics: {address: "127.0.0.1:9810"}
//	bpf: {pin_root: /sys/fs/bpf/xwan}  # absolute
//	bgp: {asn: 65010, neighbors: [...]}    # cloud interconnect (interconnect.go, docs/bgp.md)
//	lan_monitoring: {targets: [...]}       # ICMP monitoring of hosts
//	notifications: {channels: [...]}       # webhook and e-mail
//
// The last three are described, key by key, in docs/bgp.md, and
// testdata/config/interconnect.yaml has every key of them.
//
// The transport cloud (and secondary cloud) needs a hub on an edge. A key
// with no value (`hub:`) reads as absent. Anchors and aliases work; merge
// keys (<<) do not.
//
// # Defaults
//
// Filled in after validation, so the returned Config is complete:
//
//	role                  edge
//	wan[].precedence      1 (active)
//	wan[].off_cloud       true, and always false on precedence 3
//	tunnel.port           4754
//	tunnel.keepalive      10s (must be more than 0 and less than 25s, for NAT)
//	tunnel.mss_clamp      true
//	tunnel.probe_interval 300ms (10ms to 10s)
//	rules[].source, destination  any
//	rules[].protocol      any (policy.Rule.Proto -1)
//	rules[].ports, vlan   any
//	rules[].secondary     automatic
//	default.transport     cloud when hub is set, off-cloud otherwise
//	default.secondary     automatic
//	api.socket            /run/xwan/xwand.sock
//	bpf.pin_root          /sys/fs/bpf/xwan
//	metrics.address       none: no metrics endpoint
//	health.*              pathsel's and probe's defaults: 3 % loss, 30ms jitter,
//	                      600ms latency, evaluate_every 10s, hold_down 10s,
//	                      down_after 3, move_per_second_percent 20
//
// Relative paths (certificates, api.socket) are relative to the directory
// of the configuration file; Load makes them absolute.
//
// # Ids
//
// Topology, SiteID and LinkID number sites and links for the kernel maps:
// this site is 1, peers are 2.. in file order; WAN links are 1.. in file
// order. The ids are local to this gateway and never cross the wire.
package config
