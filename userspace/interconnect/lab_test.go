package interconnect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/cilium/ebpf"
	"github.com/xwan-dev/xwan/loader"
	"github.com/xwan-dev/xwan/userspace/api"
	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/pki"
	"github.com/xwan-dev/xwan/userspace/testenv"
)

var binDir string

// TestMain builds xwand and xwanctl once: the tests run the real daemon.
func TestMain(m *testing.M) { os.Exit(testenv.MainWithDaemon(m, &binDir)) }

// Addresses of the lab (see doc.go).
const (
	lanPrefix   = "198.18.10.0/24"
	gwLAN       = "198.18.10.1"
	hostLAN     = "198.18.10.10"
	meshPrefix  = "198.18.20.0/24" // site-b's, a static route over the mesh
	msee1       = "169.254.10.6"   // primary
	msee2       = "169.254.10.2"   // secondary
	vnetVM      = "198.18.200.1"   // answers pings
	vnetSilent  = "198.18.201.9"   // blackholed in the az namespace: no answer
	unroutable  = "192.0.2.1"      // the gateway has no route (no default)
	hookPort    = 8080
	routeProto  = 176 // userspace/bgp.RouteProtocol
	kernelPrio  = 20
	birdRouteID = "169.254.10.6"
)

var vnets = []string{"198.18.200.0/24", "198.18.201.0/24"}

const birdTemplate = `
log "{{.Dir}}/bird.log" all;
router id ` + birdRouteID + `;
protocol device { }
protocol static vnet {
	ipv4;
{{- range .Routes}}
	route {{.}} blackhole;
{{- end}}
}
# What BIRD learns by BGP goes in the az namespace's kernel, so that
# traffic from the gateway's LAN finds its way back.
protocol kernel {
	ipv4 { import none; export where source = RTS_BGP; };
}
template bgp msee {
	local as 12076;
	hold time 9; keepalive time 3;
	connect delay time 1; connect retry time 1; error wait time 1, 2;
	ipv4 { import all; export where source = RTS_STATIC; };
}
protocol bgp msee1 from msee {
	local 169.254.10.6; neighbor 169.254.10.5 as 65010;
	password "{{.Password1}}";
}
protocol bgp msee2 from msee {
	local 169.254.10.2; neighbor 169.254.10.1 as 65010;
	password "secret";
}
`

// xwandTemplate is the gateway's configuration; .Neighbor1 and .Neighbor2
// add keys to the two neighbours.
const xwandTemplate = `# written by the interconnect tests
site: site-a
lan:
  interfaces: [lan0]
  prefixes: [` + lanPrefix + `]
wan:
  - name: wan1
    interface: wan1
    bandwidth: {up: 100Mbit, down: 100Mbit}
peers:
  - site: site-b
    prefixes: [` + meshPrefix + `]
    links: [{name: wan1, endpoint: "198.18.100.3:4754"}]
certificates: {ca: {{.CA}}, cert: {{.Cert}}, key: {{.Key}}}
api: {socket: {{.Socket}}}
bpf: {pin_root: {{.PinRoot}}}
bgp:
  asn: 65010
  neighbors:
    - name: msee1
      peer_address: 169.254.10.6
      peer_asn: 12076
      local_address: 169.254.10.5
      password: secret
      hold_time: 9s
      keepalive: 3s
      connect_retry: 1s
      metric: 90
{{- range .Neighbor1}}
      {{.}}
{{- end}}
    - name: msee2
      peer_address: 169.254.10.2
      peer_asn: 12076
      local_address: 169.254.10.1
      password: secret
      hold_time: 9s
      keepalive: 3s
      connect_retry: 1s
      metric: 100
{{- range .Neighbor2}}
      {{.}}
{{- end}}
lan_monitoring:
  targets:
    - name: vnet-vm
      address: ` + vnetVM + `
      interval: 200ms
      thresholds: {down_after: 3, up_after: 2}
notifications:
  channels:
    - name: test-hook
      frequency: immediate
      events: [bgp_session_down, bgp_prefix_limit, lan_monitor_down, lan_monitor_up]
      webhook:
        url: "http://` + hostLAN + `:{{.HookPort}}/hook"
        headers: {X-Test: interconnect}
`

// labOptions vary the lab per test.
type labOptions struct {
	BIRDRoutes []string // default: the two VNets
	Password1  string   // BIRD's password for msee1; default "secret"
	Neighbor1  []string // extra YAML lines for xwan's msee1
	Neighbor2  []string
}

type lab struct {
	t                 *testing.T
	dir               string
	host, gw, az      *testenv.Netns
	birdSock          string
	config, socket    string
	pinRoot           string
	hook              *hookServer
	xwand             *exec.Cmd
	xwandDone         chan error
	xwandLog, evtsLog string
}

// newLab builds the namespaces, starts BIRD and the webhook receiver and
// writes xwand's configuration; startXwand runs the daemon.
func newLab(t *testing.T, o labOptions) *lab {
	t.Helper()
	testenv.RequireRoot(t)
	for _, bin := range []string{"bird", "birdc", "ip", "nsenter", "ping", "ethtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, "%s not installed (make deps)", bin)
		}
	}
	if binDir == "" {
		t.Fatal("xwand was not built")
	}
	t.Parallel()
	l := &lab{t: t, dir: t.TempDir(), pinRoot: filepath.Join("/sys/fs/bpf", testenv.UniqueName("xic"))}
	// Cleanups run last-registered first: xwand stops, then the
	// namespaces go, then the pins.
	t.Cleanup(func() {
		if err := loader.Cleanup(l.pinRoot); err != nil {
			t.Errorf("removing the pins: %v", err)
		}
	})
	l.host, l.gw, l.az = testenv.NewNetns(t, "xich"), testenv.NewNetns(t, "xicg"), testenv.NewNetns(t, "xica")
	testenv.Link(t, l.gw, "lan0", gwLAN+"/24", l.host, "eth0", hostLAN+"/24")
	testenv.Link(t, l.gw, "wan1", "198.18.100.2/24", l.host, "upl", "198.18.100.1/24")
	testenv.Link(t, l.gw, "er1", "169.254.10.5/30", l.az, "msee1", msee1+"/30")
	testenv.Link(t, l.gw, "er2", "169.254.10.1/30", l.az, "msee2", msee2+"/30")
	l.host.MustRun(t, "ip", "route", "add", "default", "via", gwLAN)
	// A veth leaves checksums to the receiver, and the LAN program sees
	// frames before anyone finishes them: compute them, as a NIC does.
	l.host.MustRun(t, "ethtool", "-K", "eth0", "tx", "off")
	l.az.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.az.MustRun(t, "ip", "addr", "add", vnetVM+"/32", "dev", "lo") // the VNet VM
	l.az.MustRun(t, "ip", "route", "add", "blackhole", "198.18.201.0/24")

	l.startBIRD(o)
	l.hook = startHook(t, l.host, fmt.Sprintf("%s:%d", hostLAN, hookPort))

	ca := filepath.Join(l.dir, "ca")
	if err := pki.InitCA(ca); err != nil {
		t.Fatal(err)
	}
	if err := pki.IssueSite(ca, "site-a", l.dir); err != nil {
		t.Fatal(err)
	}
	caCert, _ := pki.CAFiles(ca)
	cert, key := pki.SiteFiles(l.dir, "site-a")
	l.config, l.socket = filepath.Join(l.dir, "xwand.yaml"), filepath.Join(l.dir, "xwand.sock")
	l.xwandLog, l.evtsLog = filepath.Join(l.dir, "xwand.log"), filepath.Join(l.dir, "events.log")
	var b strings.Builder
	err := template.Must(template.New("xwand").Parse(xwandTemplate)).Execute(&b, map[string]any{
		"CA": caCert, "Cert": cert, "Key": key, "Socket": l.socket, "PinRoot": l.pinRoot, "HookPort": hookPort,
		"Neighbor1": o.Neighbor1, "Neighbor2": o.Neighbor2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.stopXwand(syscall.SIGTERM)
		if t.Failed() {
			for _, f := range []string{l.xwandLog, l.evtsLog, filepath.Join(l.dir, "bird.log")} {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
		}
	})
	return l
}

func (l *lab) startBIRD(o labOptions) {
	t := l.t
	bc := struct {
		Dir       string
		Routes    []string
		Password1 string
	}{l.dir, o.BIRDRoutes, o.Password1}
	if bc.Routes == nil {
		bc.Routes = vnets
	}
	if bc.Password1 == "" {
		bc.Password1 = "secret"
	}
	var b strings.Builder
	if err := template.Must(template.New("bird").Parse(birdTemplate)).Execute(&b, bc); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(l.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	l.birdSock = filepath.Join(l.dir, "bird.ctl")
	cmd := l.az.Command(context.Background(), "bird", "-f", "-c", conf, "-s", l.birdSock, "-P", filepath.Join(l.dir, "bird.pid"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("bird stderr: %s", stderr.String())
		}
	})
	waitFor(t, 15*time.Second, "BIRD's control socket", func() (bool, string) {
		out, err := l.birdc("show status")
		return err == nil && strings.Contains(out, "Daemon is up and running"), out
	})
}

func (l *lab) birdc(cmd string) (string, error) {
	return l.az.Run(append([]string{"birdc", "-s", l.birdSock}, strings.Fields(cmd)...)...)
}

// startXwand runs xwand in the gateway namespace the way the lab does
// (nsenter --net, so that its pins land in the host's bpffs) and waits
// until its API answers.
func (l *lab) startXwand() {
	t := l.t
	t.Helper()
	logf, err := os.OpenFile(l.xwandLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	evf, err := os.OpenFile(l.evtsLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.gw.Command(context.Background(), filepath.Join(binDir, "xwand"), "-config", l.config)
	cmd.Stdout, cmd.Stderr = evf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- cmd.Wait()
		logf.Close()
		evf.Close()
	}()
	l.xwand, l.xwandDone = cmd, done
	c := l.client()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			b, _ := os.ReadFile(l.xwandLog)
			t.Fatalf("xwand exited: %v:\n%s", err, b)
		default:
		}
		if _, err := c.Status(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("xwand's API is not answering after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopXwand signals xwand and waits for it (bounded).
func (l *lab) stopXwand(sig syscall.Signal) {
	if l.xwand == nil {
		return
	}
	_ = l.xwand.Process.Signal(sig)
	select {
	case <-l.xwandDone:
	case <-time.After(15 * time.Second):
		l.t.Errorf("xwand did not stop within 15s of %v", sig)
		_ = l.xwand.Process.Kill()
		<-l.xwandDone
	}
	l.xwand = nil
	if b, err := os.ReadFile(l.xwandLog); err == nil {
		for _, bad := range []string{"panic:", "WARNING: DATA RACE", "fatal error:"} {
			if bytes.Contains(b, []byte(bad)) {
				l.t.Errorf("xwand's log has %q", bad)
			}
		}
	}
}

func (l *lab) client() *api.Client { return api.NewClient(l.socket) }

// xwanctl runs the real CLI against this lab's xwand; it returns the
// output and the exit status.
func (l *lab) xwanctl(args ...string) (string, int) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "xwanctl"), append([]string{"--socket", l.socket}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	l.t.Fatalf("xwanctl %v: %v", args, err)
	return "", -1
}

// xwanctlJSON runs xwanctl --json and decodes its output.
func (l *lab) xwanctlJSON(v any, args ...string) {
	l.t.Helper()
	out, code := l.xwanctl(append([]string{"--json"}, args...)...)
	if code != 0 {
		l.t.Fatalf("xwanctl %v: exit %d: %s", args, code, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		l.t.Fatalf("xwanctl %v: %v: %s", args, err, out)
	}
}

func (l *lab) neighbors() map[string]api.BGPNeighbor {
	l.t.Helper()
	ns, err := l.client().BGPNeighbors()
	if err != nil {
		l.t.Fatal(err)
	}
	m := map[string]api.BGPNeighbor{}
	for _, n := range ns {
		m[n.Name] = n
	}
	return m
}

func (l *lab) waitEstablished(names ...string) time.Duration {
	l.t.Helper()
	start := time.Now()
	waitFor(l.t, 30*time.Second, strings.Join(names, " and ")+" established", func() (bool, string) {
		ns := l.neighbors()
		for _, n := range names {
			if ns[n].State != "established" {
				return false, fmt.Sprintf("%+v", ns)
			}
		}
		return true, ""
	})
	return time.Since(start)
}

// kernelRoutes lists xwan's BGP routes in the gateway namespace: prefix ->
// next hop.
func (l *lab) kernelRoutes() map[string]string {
	t := l.t
	t.Helper()
	out := l.gw.MustRun(t, "ip", "-j", "-4", "route", "show", "proto", fmt.Sprint(routeProto))
	var rs []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
		Metric  int    `json:"metric"`
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("ip -j route: %v: %s", err, out)
	}
	m := map[string]string{}
	for _, r := range rs {
		if r.Metric != kernelPrio {
			t.Errorf("kernel route %s has metric %d, want %d", r.Dst, r.Metric, kernelPrio)
		}
		m[r.Dst] = r.Gateway
	}
	return m
}

// vnetsVia: every VNet is in the gateway's kernel via next hop nh.
func (l *lab) vnetsVia(nh string) (bool, string) {
	rs := l.kernelRoutes()
	for _, p := range vnets {
		if rs[p] != nh {
			return false, fmt.Sprint(rs)
		}
	}
	return true, ""
}

var birdRouteLine = regexp.MustCompile(`unicast \[(\w+) [^\]]*\]( \*)?`)

// birdBest returns the protocol of BIRD's best route for prefix.
func (l *lab) birdBest(prefix string) (best string, out string) {
	out, err := l.birdc("show route " + prefix + " all")
	if err != nil {
		return "", out
	}
	for _, m := range birdRouteLine.FindAllStringSubmatch(out, -1) {
		if m[2] != "" {
			best = m[1]
		}
	}
	return best, out
}

// birdReceived lists the prefixes BIRD has from one of its protocols.
func (l *lab) birdReceived(protocol string) []string {
	out, err := l.birdc("show route protocol " + protocol)
	if err != nil {
		return nil
	}
	return regexp.MustCompile(`(?m)^(\d+\.\d+\.\d+\.\d+/\d+)`).FindAllString(out, -1)
}

// --- the LAN program's destination map, read from its pin ------------------

type destKey struct {
	Prefixlen uint32
	Addr      [16]byte
}

type destInfo struct {
	SiteID uint16
	Kind   uint8
	Pad    uint8
}

func destKeyOf(p netip.Prefix) destKey {
	return destKey{Prefixlen: uint32(p.Bits() + 96), Addr: netip.AddrFrom16(p.Addr().As16()).As16()}
}

// dests reads dest_prefixes (IPv4 entries) from the pin root.
func (l *lab) dests() map[string]destInfo {
	t := l.t
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(l.pinRoot, "dest_prefixes"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string]destInfo{}
	var k destKey
	var v destInfo
	it := m.Iterate()
	for it.Next(&k, &v) {
		a := netip.AddrFrom16(k.Addr)
		if a.Is4In6() && k.Prefixlen >= 96 {
			out[netip.PrefixFrom(a.Unmap(), int(k.Prefixlen)-96).String()] = v
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (l *lab) putDest(p netip.Prefix, v destInfo) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(l.pinRoot, "dest_prefixes"), nil)
	if err != nil {
		l.t.Fatal(err)
	}
	defer m.Close()
	k := destKeyOf(p)
	if err := m.Put(&k, &v); err != nil {
		l.t.Fatal(err)
	}
}

// --- events ------------------------------------------------------------------

func (l *lab) events(typ events.Type) []events.Event {
	l.t.Helper()
	evs, err := l.client().Events()
	if err != nil {
		l.t.Fatal(err)
	}
	var out []events.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (l *lab) eventsAbout(typ events.Type, neighbor string) []events.Event {
	var out []events.Event
	for _, e := range l.events(typ) {
		if e.Detail["neighbor"] == neighbor {
			out = append(out, e)
		}
	}
	return out
}

// --- the webhook receiver ------------------------------------------------------

// delivery is what notify.Webhook posts.
type delivery struct {
	Subject  string `json:"subject"`
	Channel  string `json:"channel"`
	Key      string `json:"key"`
	Digest   bool   `json:"digest"`
	Messages []struct {
		Kind    string `json:"kind"`
		Key     string `json:"key"`
		Summary string `json:"summary"`
	} `json:"messages"`
	header http.Header
}

type hookServer struct {
	mu  sync.Mutex
	got []delivery
}

// startHook listens on addr inside ns (the socket is made there, the test
// serves it from here) and records every POST to /hook.
func startHook(t *testing.T, ns *testenv.Netns, addr string) *hookServer {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	h := &hookServer{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d delivery
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if r.Method != http.MethodPost || r.URL.Path != "/hook" || json.Unmarshal(body, &d) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		d.header = r.Header.Clone()
		h.mu.Lock()
		h.got = append(h.got, d)
		h.mu.Unlock()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return h
}

// kinds lists the message kinds delivered so far, in order.
func (h *hookServer) kinds() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, d := range h.got {
		for _, m := range d.Messages {
			out = append(out, m.Kind)
		}
	}
	return out
}

func (h *hookServer) deliveries() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]delivery(nil), h.got...)
}

// waitFor polls cond until it holds or timeout passes; detail says what
// was seen last.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last: %s", what, timeout, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
