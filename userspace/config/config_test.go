package config_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/config"
	"github.com/xwan-dev/xwan/userspace/policy"
)

// base is a valid configuration; the broken ones below edit it, so the
// line numbers in their messages can be read off this text.
const base = `site: site-a
lan:
  interfaces: [lan0]
  prefixes: [198.18.10.0/24]
wan:
  - name: wan1
    interface: wan1
    bandwidth: {up: 100Mbit, down: 100Mbit}
certificates: {ca: ca.pem, cert: site-a.pem, key: site-a-key.pem}
peers:
  - site: site-b
    prefixes: [198.18.20.0/24]
    links:
      - {name: wan1, endpoint: 198.18.101.2:4754}
`

// with replaces old (which must be in base) by new.
func with(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(base, old) {
		t.Fatalf("base has no %q", old)
	}
	return strings.Replace(base, old, new, 1)
}

// Lines 15.. of base+extra are extra's.
func plus(extra string) string { return base + extra }

// secondLink inserts a WAN link at lines 9.. (certificates moves down).
func secondLink(t *testing.T, link string) string {
	return with(t, "certificates:", link+"certificates:")
}

func TestBaseIsValid(t *testing.T) {
	if _, err := config.Parse("t.yaml", []byte(base)); err != nil {
		t.Fatal(err)
	}
}

func TestBrokenConfigs(t *testing.T) {
	tests := []struct {
		name string
		yaml func(t *testing.T) string
		want string
	}{
		{"syntax error", func(t *testing.T) string { return with(t, "site: site-a\n", "site: site-a\n  role: edge\n") },
			`t.yaml:2: syntax error: mapping values are not allowed in this context`},
		{"unclosed flow sequence", func(t *testing.T) string { return with(t, "[lan0]", "[lan0") },
			`t.yaml:3: syntax error: did not find expected ',' or ']'`},
		{"tab indentation", func(t *testing.T) string { return with(t, "    interface: wan1", "\tinterface: wan1") },
			`t.yaml:7: syntax error: found a tab character that violates indentation`},
		{"control character", func(t *testing.T) string { return with(t, "wan1\n", "wan1\x07\n") },
			`t.yaml:6: syntax error: control character U+0007 is not allowed`},
		{"invalid utf-8", func(t *testing.T) string { return with(t, "interface: wan1", "interface: wan\xff") },
			`t.yaml:7: syntax error: invalid UTF-8 byte 0xff`},
		{"two documents", func(t *testing.T) string { return plus("---\nsite: site-c\n") },
			`t.yaml:15: syntax error: only one YAML document is allowed`},
		{"unknown anchor", func(t *testing.T) string { return plus("hub: *hub\n") },
			`t.yaml:15: syntax error: unknown anchor 'hub' referenced`},
		{"not a mapping", func(t *testing.T) string { return "# comment\n- site-a\n" },
			`t.yaml:2: (top level): must be a mapping of site, role, lan, wan, hub, peers, tunnel, rules, default, certificates, api, metrics, bpf, bgp, lan_monitoring, notifications, health, got a list`},
		{"empty file", func(t *testing.T) string { return "# nothing yet\n" },
			"t.yaml:1: site: required\n" +
				"t.yaml:1: lan: required\n" +
				"t.yaml:1: wan: required\n" +
				"t.yaml:1: certificates: required"},
		{"unknown field with suggestion", func(t *testing.T) string { return with(t, "    bandwidth:", "    bandwith:") },
			"t.yaml:6: wan[0].bandwidth: required for an active link (precedence 1)\n" +
				"t.yaml:8: wan[0].bandwith: unknown field (did you mean bandwidth?)"},
		{"unknown field, other spelling", func(t *testing.T) string {
			return secondLink(t, "  - {name: lte, interface: wwan0, precedence: 3, offCloud: false}\n")
		},
			`t.yaml:9: wan[1].offCloud: unknown field (did you mean off_cloud?)`},
		{"unknown field with a line break", func(t *testing.T) string { return plus("\"col\\nour\": blue\n") },
			`t.yaml:15: col\nour: unknown field`},
		{"unknown field, no suggestion", func(t *testing.T) string { return plus("colour: blue\n") },
			`t.yaml:15: colour: unknown field`},
		{"duplicate key", func(t *testing.T) string { return plus("site: site-c\n") },
			`t.yaml:15: site: duplicate key (first at line 1)`},
		{"merge key", func(t *testing.T) string { return plus("tunnel: {<<: {port: 1}}\n") },
			`t.yaml:15: tunnel: merge keys (<<) are not supported`},
		{"missing site", func(t *testing.T) string { return with(t, "site: site-a\n", "") },
			`t.yaml:1: site: required`},
		{"bad site name", func(t *testing.T) string { return with(t, "site: site-a", "site: Site_A") },
			`t.yaml:1: site: site name "Site_A": only a-z, 0-9 and '-' are allowed`},
		{"bad role", func(t *testing.T) string { return plus("role: spoke\n") },
			`t.yaml:15: role: must be edge or hub, got "spoke"`},
		{"no lan interfaces", func(t *testing.T) string { return with(t, "[lan0]", "[]") },
			`t.yaml:3: lan.interfaces: at least one LAN interface is required`},
		{"lan without prefixes", func(t *testing.T) string { return with(t, "  prefixes: [198.18.10.0/24]\n", "") },
			`t.yaml:2: lan.prefixes: required`},
		{"host bits in prefix", func(t *testing.T) string { return with(t, "198.18.10.0/24", "198.18.10.1/24") },
			`t.yaml:4: lan.prefixes[0]: 198.18.10.1/24 has host bits set (did you mean 198.18.10.0/24?)`},
		{"not a prefix", func(t *testing.T) string { return with(t, "198.18.10.0/24", "198.18.10.0") },
			`t.yaml:4: lan.prefixes[0]: "198.18.10.0" is not a prefix (want address/length such as 198.18.10.0/24)`},
		{"bad interface name", func(t *testing.T) string { return with(t, "[lan0]", "[a-very-long-interface]") },
			`t.yaml:3: lan.interfaces[0]: "a-very-long-interface" is not a Linux interface name (1 to 15 characters, no '/', ':' or spaces)`},
		{"empty wan", func(t *testing.T) string {
			return with(t, "wan:\n  - name: wan1\n    interface: wan1\n    bandwidth: {up: 100Mbit, down: 100Mbit}\n", "wan: []\n")
		}, `t.yaml:5: wan: at least one WAN link is required`},
		{"wan link not a mapping", func(t *testing.T) string { return secondLink(t, "  - wan2\n") },
			`t.yaml:9: wan[1]: must be a mapping of name, interface, address, precedence, bandwidth, off_cloud, public, got "wan2"`},
		{"duplicate wan name", func(t *testing.T) string {
			return secondLink(t, "  - {name: wan1, interface: wan2, bandwidth: {up: 1Gbit, down: 1Gbit}}\n")
		}, `t.yaml:9: wan[1].name: duplicate WAN link name "wan1" (first at line 6)`},
		{"bad wan name", func(t *testing.T) string { return with(t, "- name: wan1", "- name: WAN_1") },
			`t.yaml:6: wan[0].name: "WAN_1": must be 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'`},
		{"wan on a lan interface", func(t *testing.T) string { return with(t, "interface: wan1", "interface: lan0") },
			`t.yaml:7: wan[0].interface: lan0 is also a LAN interface`},
		{"precedence 4", func(t *testing.T) string {
			return secondLink(t, "  - name: wan2\n    interface: wan2\n    precedence: 4\n")
		}, `t.yaml:11: wan[1].precedence: must be 1 (active), 2 (passive) or 3 (last resort), got 4`},
		{"precedence not a number", func(t *testing.T) string {
			return secondLink(t, "  - {name: wan2, interface: wan2, precedence: passive}\n")
		}, `t.yaml:9: wan[1].precedence: must be 1 (active), 2 (passive) or 3 (last resort), got passive`},
		{"off-cloud on a last-resort link", func(t *testing.T) string {
			return secondLink(t, "  - name: lte\n    interface: wwan0\n    precedence: 3\n    off_cloud: true\n")
		}, `t.yaml:12: wan[1].off_cloud: off-cloud cannot be enabled on a last-resort link (precedence 3)`},
		{"bad bandwidth unit", func(t *testing.T) string { return with(t, "up: 100Mbit", "up: 100MB") },
			`t.yaml:8: wan[0].bandwidth.up: unknown unit "MB" in "100MB" (want bit, Kbit, Mbit or Gbit)`},
		{"bandwidth without unit", func(t *testing.T) string { return with(t, "up: 100Mbit", "up: 100") },
			`t.yaml:8: wan[0].bandwidth.up: "100" is not a rate (want a number and a unit: bit, Kbit, Mbit or Gbit, e.g. 100Mbit)`},
		{"zero bandwidth on an active link", func(t *testing.T) string { return with(t, "down: 100Mbit", "down: 0Mbit") },
			`t.yaml:8: wan[0].bandwidth.down: must be more than 0 for an active link (precedence 1)`},
		{"missing bandwidth on a passive link", func(t *testing.T) string {
			return secondLink(t, "  - {name: wan2, interface: wan2, precedence: 2, bandwidth: {up: 1Gbit}}\n")
		}, `t.yaml:9: wan[1].bandwidth.down: required for a passive link (precedence 2)`},
		{"bad public address", func(t *testing.T) string {
			return with(t, "    interface: wan1\n", "    interface: wan1\n    public: 203.0.113.5\n")
		}, `t.yaml:8: wan[0].public: "203.0.113.5" is not a unicast address:port such as 203.0.113.5:4754 or [2001:db8::5]:4754`},
		{"too many wan links", func(t *testing.T) string {
			var links strings.Builder
			for i := 2; i <= 16; i++ {
				links.WriteString("  - {name: w" + itoa(i) + ", interface: w" + itoa(i) + ", precedence: 3}\n")
			}
			return secondLink(t, links.String())
		}, `t.yaml:23: wan[15]: too many WAN links: at most 15`},
		{"bad endpoint", func(t *testing.T) string {
			return with(t, "endpoint: 198.18.101.2:4754", "endpoint: 198.18.101.2:99999")
		},
			`t.yaml:14: peers[0].links[0].endpoint: "198.18.101.2:99999" is not a unicast address:port such as 203.0.113.5:4754 or [2001:db8::5]:4754`},
		{"duplicate endpoint", func(t *testing.T) string {
			return plus("  - site: site-c\n    links: [{name: wan1, endpoint: 198.18.101.2:4754}]\n")
		}, `t.yaml:16: peers[1].links[0].endpoint: 198.18.101.2:4754 is already the endpoint of peers[0].links[0] (line 14); every site needs its own public address and port`},
		{"peer is this site", func(t *testing.T) string { return with(t, "- site: site-b", "- site: site-a") },
			`t.yaml:11: peers[0].site: "site-a" is this site (site: above), not a peer`},
		{"duplicate peer", func(t *testing.T) string {
			return plus("  - site: site-b\n    links: [{name: wan1, endpoint: 198.18.102.2:4754}]\n")
		}, `t.yaml:15: peers[1].site: duplicate peer "site-b" (first at line 11)`},
		{"duplicate peer link", func(t *testing.T) string { return plus("      - {name: wan1, endpoint: 198.18.101.3:4754}\n") },
			`t.yaml:15: peers[0].links[1].name: duplicate link name "wan1" for site-b (first at line 14)`},
		{"same prefix at two sites", func(t *testing.T) string { return with(t, "[198.18.20.0/24]", "[198.18.10.0/24]") },
			`t.yaml:12: peers[0].prefixes[0]: 198.18.10.0/24 is already a prefix of site-a (lan.prefixes[0], line 4)`},
		{"peer without links and no hub", func(t *testing.T) string { return plus("  - site: site-c\n    prefixes: [198.18.30.0/24]\n") },
			`t.yaml:15: peers[1].links: required without a hub: nothing else can tell where site-c is`},
		{"unknown hub", func(t *testing.T) string { return plus("hub: hub\n") },
			`t.yaml:15: hub: "hub" is not a peer (list it under peers:)`},
		{"hub with a hub", func(t *testing.T) string { return plus("role: hub\nhub: site-b\n") },
			`t.yaml:16: hub: a hub gateway (role: hub) has no hub of its own`},
		{"rule with unknown site", func(t *testing.T) string {
			return plus("rules:\n  - name: to-z\n    destination: {site: site-z}\n    transport: off-cloud\n")
		}, `t.yaml:17: rules[0].destination: unknown destination site "site-z"`},
		{"rule with bad port range", func(t *testing.T) string {
			return plus("rules:\n  - name: web\n    protocol: tcp\n    destination_ports: 2000-1000\n    transport: off-cloud\n")
		}, `t.yaml:18: rules[0].destination_ports: bad port range "2000-1000": low end above high end`},
		{"rule with a port that is not one", func(t *testing.T) string {
			return plus("rules:\n  - name: web\n    protocol: tcp\n    source_ports: https\n    transport: off-cloud\n")
		}, `t.yaml:18: rules[0].source_ports: "https" is not a port 1-65535 or a range such as 1000-2000`},
		{"ports with protocol icmp", func(t *testing.T) string {
			return plus("rules:\n  - name: ping\n    protocol: icmp\n    destination_ports: 7\n    transport: off-cloud\n")
		}, `t.yaml:18: rules[0].destination_ports: destination ports need protocol tcp or udp`},
		{"bad protocol", func(t *testing.T) string {
			return plus("rules:\n  - {name: gre, protocol: gre, transport: off-cloud}\n")
		},
			`t.yaml:16: rules[0].protocol: must be any, tcp, udp, icmp, icmpv6 or a protocol number 0-255, got "gre"`},
		{"complex rule with domains", func(t *testing.T) string {
			return plus("rules:\n  - name: saas\n    domains: [example.com]\n    transport: off-cloud\n")
		}, `t.yaml:17: rules[0].domains: complex rule: applications, categories and domain names cannot be evaluated by the kernel classifier; use prefixes, sites, protocol, ports and VLAN only`},
		{"rule naming unknown link", func(t *testing.T) string {
			return plus("rules:\n  - {name: pinned, transport: off-cloud, link: wan9}\n")
		}, `t.yaml:16: rules[0].link: unknown preferred link "wan9"`},
		{"off-cloud rule on a last-resort link", func(t *testing.T) string {
			return secondLink(t, "  - {name: lte, interface: wwan0, precedence: 3}\n") +
				"rules:\n  - {name: pinned, transport: off-cloud, link: lte}\n"
		}, `t.yaml:17: rules[0].link: lte does not carry off-cloud traffic (it is a last-resort link, precedence 3)`},
		{"bad transport", func(t *testing.T) string { return plus("rules:\n  - {name: r, transport: teleport}\n") },
			`t.yaml:16: rules[0].transport: unknown transport "teleport" (want off-cloud, cloud, backhaul, direct or drop)`},
		{"rule without transport", func(t *testing.T) string { return plus("rules:\n  - name: r\n") },
			`t.yaml:16: rules[0].transport: required`},
		{"cloud without a hub", func(t *testing.T) string { return plus("default: {transport: cloud}\n") },
			`t.yaml:15: default.transport: cloud needs a hub (set hub: to the peer that is the hub)`},
		{"vlan 0", func(t *testing.T) string { return plus("rules:\n  - {name: v, vlan: 0, transport: drop}\n") },
			`t.yaml:16: rules[0].vlan: must be a VLAN id 1-4094 (leave it out to match any), got 0`},
		{"source neither any nor a mapping", func(t *testing.T) string {
			return plus("rules:\n  - {name: r, source: 198.18.10.0/24, transport: drop}\n")
		}, `t.yaml:16: rules[0].source: must be any, {prefix: P} or {site: S}, got "198.18.10.0/24"`},
		{"rule with an empty name", func(t *testing.T) string { return plus("rules:\n  - {name: \"\", transport: drop}\n") },
			`t.yaml:16: rules[0].name: must be a non-empty name without control characters, got ""`},
		{"source with a prefix and a site", func(t *testing.T) string {
			return plus("rules:\n  - name: r\n    source: {prefix: 198.18.10.0/24, site: site-a}\n    transport: drop\n")
		}, `t.yaml:17: rules[0].source: source names both a prefix and a site`},
		{"too many rules", func(t *testing.T) string {
			var rules strings.Builder
			rules.WriteString("rules:\n")
			for i := range policy.MaxRules + 1 {
				rules.WriteString("  - {name: r" + itoa(i) + ", transport: drop}\n")
			}
			return plus(rules.String())
		}, `t.yaml:4112: rules[4096]: too many rules: 4097, the kernel classifier holds at most 4096`},
		{"default naming unknown link", func(t *testing.T) string { return plus("default:\n  transport: off-cloud\n  link: wan9\n") },
			`t.yaml:17: default.link: unknown preferred link "wan9"`},
		{"hub without links", func(t *testing.T) string {
			return plus("  - site: hub\nhub: hub\n")
		}, `t.yaml:15: peers[1].links: required: hub is the hub, and nothing else can tell where it is`},
		{"duplicate rule names", func(t *testing.T) string {
			return plus("rules:\n  - {name: r, transport: drop}\n  - {name: r, transport: direct}\n")
		}, `t.yaml:17: rules[1].name: duplicate rule name "r" (first at line 16)`},
		{"keepalive 30s", func(t *testing.T) string { return plus("tunnel: {keepalive: 30s}\n") },
			`t.yaml:15: tunnel.keepalive: must be more than 0s and less than 25s (NAT mappings expire), got 30s`},
		{"keepalive without unit", func(t *testing.T) string { return plus("tunnel:\n  keepalive: 10\n") },
			`t.yaml:16: tunnel.keepalive: must be a duration with a unit such as 10s or 300ms, got "10"`},
		{"mss_clamp not a bool", func(t *testing.T) string { return plus("tunnel: {mss_clamp: yes}\n") },
			`t.yaml:15: tunnel.mss_clamp: must be true or false, got "yes"`},
		{"missing certificates", func(t *testing.T) string {
			return with(t, "certificates: {ca: ca.pem, cert: site-a.pem, key: site-a-key.pem}\n", "")
		}, `t.yaml:1: certificates: required`},
		{"missing certificate key", func(t *testing.T) string { return with(t, ", key: site-a-key.pem}", "}") },
			`t.yaml:9: certificates.key: required`},
		{"metrics address without port", func(t *testing.T) string { return plus("metrics: {address: 127.0.0.1}\n") },
			`t.yaml:15: metrics.address: must be host:port such as 127.0.0.1:9810, got "127.0.0.1"`},
		{"relative pin root", func(t *testing.T) string { return plus("bpf: {pin_root: xwan}\n") },
			`t.yaml:15: bpf.pin_root: must be an absolute path on a bpf file system, got "xwan"`},
		{"socket path too long", func(t *testing.T) string { return plus("api: {socket: /" + strings.Repeat("s", 107) + "}\n") },
			`t.yaml:15: api.socket: /` + strings.Repeat("s", 107) + ` is longer than the 107 bytes a unix socket path may have`},
		{"several errors at once, in line order", func(t *testing.T) string {
			return with(t, "site: site-a", "site: site-a\nrole: spoke") + // line 2
				"rules:\n" + // lines 16..
				"  - {name: r, transport: drop}\n" +
				"  - {name: r, transport: teleport, link: wan9}\n" +
				"tunnel: {keepalive: 30s}\n" +
				"hub: nowhere\n"
		}, "t.yaml:2: role: must be edge or hub, got \"spoke\"\n" +
			"t.yaml:18: rules[1].name: duplicate rule name \"r\" (first at line 17)\n" +
			"t.yaml:18: rules[1].transport: unknown transport \"teleport\" (want off-cloud, cloud, backhaul, direct or drop)\n" +
			"t.yaml:18: rules[1].link: unknown preferred link \"wan9\"\n" +
			"t.yaml:19: tunnel.keepalive: must be more than 0s and less than 25s (NAT mappings expire), got 30s\n" +
			"t.yaml:20: hub: \"nowhere\" is not a peer (list it under peers:)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte(tc.yaml(t)))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml(t))
			}
			if cfg != nil {
				t.Error("a Config came back with the error")
			}
			if err.Error() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", err, tc.want)
			}
			var list config.Errors
			if !errors.As(err, &list) || len(list) != strings.Count(tc.want, "\n")+1 {
				t.Errorf("error is not an Errors with one entry per line: %#v", err)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestFieldErrorIsReachable(t *testing.T) {
	_, err := config.Parse("dir/site-a.yaml", []byte(plus("tunnel: {port: 0}\n")))
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As found no *FieldError in %v", err)
	}
	want := config.FieldError{File: "dir/site-a.yaml", Line: 15, Field: "tunnel.port", Msg: "must be a UDP port 1-65535, got 0"}
	if *fe != want {
		t.Errorf("got %+v, want %+v", *fe, want)
	}
}

func TestLoadMissingFileNamesIt(t *testing.T) {
	_, err := config.Load("/nonexistent/xwan.yaml")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "/nonexistent/xwan.yaml") {
		t.Errorf("got %v", err)
	}
}

func mustLoad(t *testing.T, name string) (*config.Config, string) {
	t.Helper()
	dir, err := filepath.Abs("../../testdata/config")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join("../../testdata/config", name))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

func TestFullExample(t *testing.T) {
	cfg, dir := mustLoad(t, "full.yaml")
	p := netip.MustParsePrefix
	ap := netip.MustParseAddrPort
	any := policy.PortRange{}
	want := &config.Config{
		File: "../../testdata/config/full.yaml",
		Site: "site-a",
		Role: config.RoleEdge,
		LAN:  config.LAN{Interfaces: []string{"lan0"}, Prefixes: []netip.Prefix{p("198.18.10.0/24"), p("2001:db8:10::/64")}},
		WAN: []config.WANLink{
			{Name: "wan1", Interface: "wan1", Address: netip.MustParseAddr("198.18.100.2"), Precedence: config.Active,
				BandwidthUp: 100e6, BandwidthDown: 50e6, OffCloud: true, Public: ap("203.0.113.5:4754")},
			{Name: "wan2", Interface: "wan2", Precedence: config.Passive, BandwidthUp: 1.5e9, BandwidthDown: 1e9, OffCloud: true},
			{Name: "lte", Interface: "wwan0", Precedence: config.LastResort, OffCloud: false},
		},
		Hub: "hub",
		Peers: []config.Peer{
			{Site: "hub", Links: []config.PeerLink{{Name: "wan1", Endpoint: ap("198.18.200.2:4754")}}},
			{Site: "site-b", Prefixes: []netip.Prefix{p("198.18.20.0/24")}, Links: []config.PeerLink{
				{Name: "wan1", Endpoint: ap("198.18.101.2:4754")}, {Name: "wan2", Endpoint: ap("[2001:db8:101::2]:4754")}}},
			{Site: "site-c", Prefixes: []netip.Prefix{p("198.18.30.0/24")}},
		},
		Tunnel: config.Tunnel{Port: 4754, Keepalive: 10 * time.Second, MSSClamp: true, ProbeInterval: 300 * time.Millisecond, RekeyInterval: 10 * time.Minute},
		Health: config.Health{LossPercent: 3, Jitter: 30 * time.Millisecond, Latency: 600 * time.Millisecond, EvaluateEvery: 10 * time.Second,
			HoldDown: 10 * time.Second, DownAfter: 3, MovePerSecond: 20},
		Rules: []policy.Rule{
			{Name: "backups", Src: policy.Endpoint{Prefix: p("198.18.10.0/24")}, Dst: policy.Endpoint{Site: "site-b"},
				Proto: policy.ProtoTCP, SrcPorts: any, DstPorts: policy.PortRange{Lo: 873, Hi: 873},
				Action: policy.Action{Transport: policy.OffCloud, Secondary: policy.NoSecondary, PreferredLink: "wan1"}},
			{Name: "voice", Dst: policy.Endpoint{Prefix: p("198.18.30.0/24")}, Proto: policy.ProtoUDP,
				SrcPorts: policy.PortRange{Lo: 16384, Hi: 32767}, VLAN: 20, Action: policy.Action{Transport: policy.OffCloud}},
			{Name: "ping", Proto: 1, Action: policy.Action{Transport: policy.Cloud}},
			{Name: "no-telnet", Proto: 6, DstPorts: policy.PortRange{Lo: 23, Hi: 23}, Action: policy.Action{Transport: policy.Drop}},
		},
		Default: policy.Action{Transport: policy.Cloud, Secondary: policy.Automatic},
		Certificates: config.Certificates{
			CA:   filepath.Join(dir, "pki/ca.pem"),
			Cert: filepath.Join(dir, "pki/site-a.pem"),
			Key:  "/etc/xwan/site-a-key.pem",
		},
		API:     config.API{Socket: "/run/xwan/xwand.sock"},
		Metrics: config.Metrics{Address: "127.0.0.1:9810"},
		BPF:     config.BPF{PinRoot: "/sys/fs/bpf/xwan"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}

	// Ids: this site 1, peers 2.. and links 1.. in file order.
	topo := cfg.Topology()
	wantTopo := policy.Topology{
		Sites: map[string]uint16{"site-a": 1, "hub": 2, "site-b": 3, "site-c": 4},
		Links: map[string]uint8{"wan1": 1, "wan2": 2, "lte": 3},
	}
	if !reflect.DeepEqual(topo, wantTopo) {
		t.Errorf("Topology() = %+v, want %+v", topo, wantTopo)
	}
	for name, id := range wantTopo.Sites {
		if got := cfg.SiteID(name); got != id {
			t.Errorf("SiteID(%q) = %d, want %d", name, got, id)
		}
	}
	for name, id := range wantTopo.Links {
		if got := cfg.LinkID(name); got != id {
			t.Errorf("LinkID(%q) = %d, want %d", name, got, id)
		}
	}
	if cfg.SiteID("nowhere") != 0 || cfg.LinkID("wan9") != 0 || cfg.SiteID("") != 0 || cfg.LinkID("") != 0 {
		t.Error("unknown names must have id 0")
	}

	// The rule set is what the daemon compiles; it must compile, and be a copy.
	rs := cfg.RuleSet()
	if !reflect.DeepEqual(rs.Rules, cfg.Rules) || rs.Default != cfg.Default {
		t.Errorf("RuleSet() = %+v", rs)
	}
	if _, err := policy.Compile(rs, topo); err != nil {
		t.Errorf("Compile: %v", err)
	}
	rs.Rules[0].Name = "changed"
	if cfg.Rules[0].Name != "backups" {
		t.Error("RuleSet shares its rules with the Config")
	}
}

func TestMinimalExampleDefaults(t *testing.T) {
	cfg, dir := mustLoad(t, "minimal.yaml")
	want := &config.Config{
		File: "../../testdata/config/minimal.yaml",
		Site: "site-a",
		Role: config.RoleEdge,
		LAN:  config.LAN{Interfaces: []string{"lan0"}, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.10.0/24")}},
		WAN: []config.WANLink{{Name: "wan1", Interface: "wan1", Precedence: config.Active,
			BandwidthUp: 100e6, BandwidthDown: 100e6, OffCloud: true}},
		Peers: []config.Peer{{Site: "site-b", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.20.0/24")},
			Links: []config.PeerLink{{Name: "wan1", Endpoint: netip.MustParseAddrPort("198.18.101.2:4754")}}}},
		Tunnel:  config.Tunnel{Port: config.DefaultTunnelPort, Keepalive: config.DefaultKeepalive, MSSClamp: true, ProbeInterval: config.DefaultProbeInterval},
		Default: policy.Action{Transport: policy.OffCloud}, // no hub
		Certificates: config.Certificates{
			CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "site-a.pem"), Key: filepath.Join(dir, "site-a-key.pem"),
		},
		API: config.API{Socket: config.DefaultAPISocket},
		BPF: config.BPF{PinRoot: config.DefaultPinRoot},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestDefaultsAndExplicitValues(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(secondLink(t,
		"  - {name: lte, interface: wwan0, precedence: 3, off_cloud: false}\n  - {name: wan2, interface: wan2, off_cloud: false, bandwidth: {up: 1kbit, down: 2.5KBIT}}\n")+
		"hub: site-b\ntunnel: {mss_clamp: false, port: 5000}\nrules:\n  - {name: r, protocol: \"17\", source_ports: 53, transport: cloud}\n"+
		"default: {secondary: none}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.WAN[1]; w.Precedence != config.LastResort || w.OffCloud {
		t.Errorf("last-resort link: %+v", w)
	}
	if w := cfg.WAN[2]; w.Precedence != config.Active || w.OffCloud || w.BandwidthUp != 1000 || w.BandwidthDown != 2500 {
		t.Errorf("wan2: %+v", w)
	}
	if cfg.Tunnel.MSSClamp || cfg.Tunnel.Port != 5000 {
		t.Errorf("tunnel: %+v", cfg.Tunnel)
	}
	if r := cfg.Rules[0]; r.Proto != policy.ProtoUDP || r.SrcPorts != (policy.PortRange{Lo: 53, Hi: 53}) || !r.Src.Any() || !r.Dst.Any() {
		t.Errorf("rule: %+v", r)
	}
	if cfg.Default != (policy.Action{Transport: policy.Cloud, Secondary: policy.NoSecondary}) {
		t.Errorf("default with a hub: %+v", cfg.Default)
	}
}

func TestRelativeCertificatePaths(t *testing.T) {
	certs := "certificates: {ca: ca.pem, cert: ../pki/site-a.pem, key: /secret/site-a-key.pem}\n"
	text := with(t, "certificates: {ca: ca.pem, cert: site-a.pem, key: site-a-key.pem}\n", certs)
	for _, tc := range []struct{ file, ca, cert string }{
		{"/etc/xwan/site-a.yaml", "/etc/xwan/ca.pem", "/etc/pki/site-a.pem"},
		{"conf/site-a.yaml", "conf/ca.pem", "pki/site-a.pem"},
		{"site-a.yaml", "ca.pem", "../pki/site-a.pem"},
	} {
		cfg, err := config.Parse(tc.file, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		want := config.Certificates{CA: tc.ca, Cert: tc.cert, Key: "/secret/site-a-key.pem"}
		if cfg.Certificates != want {
			t.Errorf("%s: got %+v, want %+v", tc.file, cfg.Certificates, want)
		}
	}

	// Load anchors them to the file's directory whatever the working directory.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "site-a.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	cfg, err := config.Load("site-a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Certificates{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(filepath.Dir(dir), "pki/site-a.pem"), Key: "/secret/site-a-key.pem"}
	if cfg.Certificates != want {
		t.Errorf("Load: got %+v, want %+v", cfg.Certificates, want)
	}
}

func TestAnchorsAndAliases(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(with(t, "  prefixes: [198.18.10.0/24]", "  prefixes: &lan [198.18.10.0/24]")+
		"rules:\n  - {name: a, source: {prefix: 198.18.10.0/24}, transport: &t off-cloud}\n  - {name: b, transport: *t}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rules[1].Action.Transport != policy.OffCloud {
		t.Errorf("alias: %+v", cfg.Rules[1])
	}
}

// A document whose aliases expand to millions of nodes must be refused
// quickly, with a bounded number of messages.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString(base)
	b.WriteString("anchors:\n  s: &s [" + strings.Repeat("a, ", 1100) + "]\n")
	b.WriteString("  r: &r {name: r, transport: drop, applications: *s}\n")
	b.WriteString("rules: [" + strings.Repeat("*r, ", 1000) + "]\n")
	start := time.Now()
	_, err := config.Parse("bomb.yaml", []byte(b.String()))
	var list config.Errors
	if !errors.As(err, &list) || !strings.Contains(err.Error(), "document too large") {
		t.Fatalf("got %v", err)
	}
	if len(list) > 101 || !strings.HasSuffix(err.Error(), "more)") {
		t.Errorf("%d messages, last %v", len(list), list[len(list)-1])
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestHealthSection(t *testing.T) {
	base, err := os.ReadFile("../../testdata/config/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	good := string(base) + "health: {loss_percent: 2.5%, jitter: 20ms, latency: 300ms, evaluate_every: 5s, hold_down: 30s, down_after: 4, move_per_second_percent: 50}\n"
	c, err := config.Parse("h.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Health{LossPercent: 2.5, Jitter: 20 * time.Millisecond, Latency: 300 * time.Millisecond, EvaluateEvery: 5 * time.Second, HoldDown: 30 * time.Second, DownAfter: 4, MovePerSecond: 50}
	if c.Health != want {
		t.Fatalf("got %+v", c.Health)
	}
	lines := strings.Count(string(base), "\n") + 1
	_, err = config.Parse("h.yaml", []byte(string(base)+"health: {loss_percent: 0, evaluate_every: 100ms}\n"))
	wantErr := fmt.Sprintf("h.yaml:%d: health.loss_percent: must be a percentage above 0 and at most 100, got \"0\"\nh.yaml:%d: health.evaluate_every: must be between 1s and 10m, got 100ms", lines, lines)
	if err == nil || err.Error() != wantErr {
		t.Fatalf("got  %v\nwant %s", err, wantErr)
	}
}
