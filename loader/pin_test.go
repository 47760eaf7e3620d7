package loader

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/policy/policytest"
	"github.com/xwan-dev/xwan/userspace/testenv"
	"github.com/xwan-dev/xwan/userspace/verdict"
)

// lanPair makes namespaces "gw" (LAN interface lan0, 198.18.0.1/24) and
// "host" (198.18.0.2/24) joined by a veth pair.
func lanPair(t *testing.T) (gw, host *testenv.Netns) {
	gw = testenv.NewNetns(t, "xwgw")
	host = testenv.NewNetns(t, "xwho")
	testenv.Link(t, gw, "lan0", "198.18.0.1/24", host, "eth0", "198.18.0.2/24")
	return gw, host
}

func runChild(t *testing.T, ns *testenv.Netns, step, root string) childReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "XWAN_LOADER_CHILD="+step, "XWAN_PIN_ROOT="+root, "XWAN_IFNAME=lan0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v: %s", step, err, stderr.String())
	}
	var rep childReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("child %s printed %q: %v", step, out, err)
	}
	return rep
}

func xdpProgOnLink(t *testing.T, ns *testenv.Netns, ifname string) string {
	t.Helper()
	out := ns.MustRun(t, "ip", "-d", "link", "show", "dev", ifname)
	i := strings.Index(out, "prog/xdp id ")
	if i < 0 {
		return ""
	}
	return strings.Fields(out[i+len("prog/xdp id "):])[0]
}

// TestReadopt stops the loader's process without detaching: XDP stays
// attached and keeps passing traffic, the maps keep their contents, and a
// new loader adopts the pinned program, maps and link without replacing
// them. Cleanup then removes exactly what xwan pinned.
func TestReadopt(t *testing.T) {
	root := testPinRoot(t)
	gw, host := lanPair(t)

	first := runChild(t, gw, "first", root)
	if first.Adopted || first.Mode == ModeAdopted || first.Mode == "" {
		t.Fatalf("first run should load and attach fresh: %+v", first)
	}
	// The process is gone; the program must still be on lan0.
	if id := xdpProgOnLink(t, gw, "lan0"); id == "" || id != itoa(first.ProgID) {
		t.Fatalf("after the loader exited, lan0 runs XDP program %q, want %d", id, first.ProgID)
	}
	// And still working: ping through it, and read its counters from the pin.
	stats, err := ebpf.LoadPinnedMap(filepath.Join(root, "stats_reasons"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	before, err := sumPerCPU(stats, int(verdict.NumReasons))
	if err != nil {
		t.Fatal(err)
	}
	host.MustRun(t, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.1")
	after, err := sumPerCPU(stats, int(verdict.NumReasons))
	if err != nil {
		t.Fatal(err)
	}
	if got := after[verdict.NoRoute].Packets - before[verdict.NoRoute].Packets; got < 3 {
		t.Fatalf("XDP counted %d no_route packets for 3 pings while the daemon was down", got)
	}

	second := runChild(t, gw, "second", root)
	if !second.Adopted || second.Mode != ModeAdopted || second.ProgID != first.ProgID {
		t.Fatalf("second run should adopt program %d: %+v", first.ProgID, second)
	}
	if second.Dest == nil || *second.Dest != (policy.Dest{Site: 7, Kind: policy.DestMesh}) {
		t.Fatalf("dest_prefixes lost its contents across the restart: %+v", second.Dest)
	}

	// Something not ours in the pin root must survive Cleanup.
	foreign, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	foreignPin := filepath.Join(root, "not_xwan")
	if err := foreign.Pin(foreignPin); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(root); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "not_xwan" {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("after Cleanup the pin root holds %v, want only not_xwan", names)
	}
	if id := xdpProgOnLink(t, gw, "lan0"); id != "" {
		t.Fatalf("after Cleanup lan0 still runs XDP program %s", id)
	}
	_ = foreign.Unpin()
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// policyScenarioForDump is one off-cloud rule to site 3.
func policyScenarioForDump() *policy.Compiled {
	rs := &policy.RuleSet{
		Rules:   []policy.Rule{{Name: "to-s3", Dst: policy.Endpoint{Site: "s3"}, Proto: -1, Action: policy.Action{Transport: policy.OffCloud}}},
		Default: policy.Action{Transport: policy.Cloud},
	}
	c, err := policy.Compile(rs, policytest.Topology())
	if err != nil {
		panic(err)
	}
	return c
}

func dumpFrame() []byte {
	f := policytest.Frame{Src: netip.MustParseAddr("198.18.1.10"), Dst: netip.MustParseAddr("198.18.77.5"), Proto: 17, Sport: 4000, Dport: 53}
	return f.Bytes()
}

// TestBpftoolDump checks that bpftool prints every pinned map of the LAN
// program with field names, from BTF.
func TestBpftoolDump(t *testing.T) {
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		testenv.Unavailable(t, "bpftool not installed (make deps)")
	}
	d := openTest(t)
	sc := policyScenarioForDump()
	if _, err := d.ApplyRules(sc); err != nil {
		t.Fatal(err)
	}
	if err := d.SetDest(childPrefix, policy.Dest{Site: 3, Kind: policy.DestMesh}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPath(1, PathInfo{State: PathUp, LinkId: 1, SiteId: 3}); err != nil {
		t.Fatal(err)
	}
	slots := make([]uint16, policy.MaglevSlots)
	for i := range slots {
		slots[i] = 1
	}
	if err := d.SetSiteTable(3, 0, slots); err != nil {
		t.Fatal(err)
	}
	if err := d.SetTunnelPort(4754); err != nil {
		t.Fatal(err)
	}
	if err := d.AllowPeer(netip.MustParseAddrPort("198.18.103.2:0"), 3); err != nil {
		t.Fatal(err)
	}
	// One packet fills flows and the counters.
	frame := dumpFrame()
	if _, _, err := d.TestRun(frame); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"dest_prefixes":   {`"prefixlen"`, `"addr"`, `"site_id"`, `"kind"`},
		"rule_gen":        {`"key"`, `"value"`},
		"settings":        {`"local_site"`, `"hub_site"`, `"backhaul_site"`},
		"rule_src_prefix": {`"prefixlen"`, `"slot"`, `"addr"`},
		"rule_bitmaps":    {`"summary"`, `"words"`},
		"rule_actions":    {`"transport"`, `"secondary"`, `"pref_link"`},
		"site_paths":      {`"site_id"`, `"link_id"`, `"slots"`},
		"paths":           {`"state"`, `"link_id"`, `"remote_addr"`, `"remote_port"`},
		"flows":           {`"saddr"`, `"daddr"`, `"sport"`, `"dport"`, `"proto"`, `"generation"`, `"path_id"`, `"rule_id"`},
		"stats_reasons":   {`"packets"`, `"bytes"`, `"cpu"`},
		"stats_rules":     {`"packets"`, `"bytes"`},
		"stats_paths":     {`"packets"`, `"bytes"`},
		"wan_config":      {`"tunnel_port"`},
		"peer_allow":      {`"addr"`, `"port"`, `"site_id"`},
		"stats_wan":       {`"packets"`, `"bytes"`},
	}
	for name, fields := range want {
		out, err := exec.Command(bpftool, "map", "dump", "pinned", filepath.Join(d.PinRoot(), name)).CombinedOutput()
		if err != nil {
			t.Errorf("bpftool map dump %s: %v: %s", name, err, out)
			continue
		}
		for _, f := range fields {
			if !strings.Contains(string(out), f) {
				t.Errorf("bpftool map dump %s: no field %s in:\n%.400s", name, f, out)
			}
		}
	}
	// Every pinned map must be dumpable (including xsks and the class arrays).
	entries, err := os.ReadDir(d.PinRoot())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		// The kernel keeps no BTF for XSKMAPs (their values are sockets).
		if strings.HasPrefix(e.Name(), "prog_") || strings.HasPrefix(e.Name(), "link_") || e.Name() == "xsks" {
			continue
		}
		if out, err := exec.Command(bpftool, "map", "show", "pinned", filepath.Join(d.PinRoot(), e.Name())).CombinedOutput(); err != nil || !strings.Contains(string(out), "btf_id") {
			t.Errorf("bpftool map show %s: no BTF: %v: %s", e.Name(), err, out)
		}
	}
}
