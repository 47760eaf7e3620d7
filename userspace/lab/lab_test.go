package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/events"
	"github.com/xwan-dev/xwan/userspace/pki"
	"github.com/xwan-dev/xwan/userspace/testenv"
	"github.com/xwan-dev/xwan/userspace/tunnel"
)

var binDir string

// TestMain builds xwand and xwanctl once for the lab tests.
func TestMain(m *testing.M) { os.Exit(testenv.MainWithDaemon(m, &binDir)) }

func startLab(t *testing.T) *Lab { return startLabWith(t, Options{}, 4) }

// startLabWith builds a lab with xwand on a unique prefix (Prefix, Dir and
// Xwand are filled in) and waits until every site has paths paths up.
func startLabWith(t *testing.T, opts Options, paths int) *Lab {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"nsenter", "ethtool", "tcpdump", "iperf3", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "%s not installed (make deps)", tool)
		}
	}
	prefix := testenv.UniqueName("t")
	opts.Prefix, opts.Dir, opts.Xwand = prefix, t.TempDir(), filepath.Join(binDir, "xwand")
	l, err := Up(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range l.Sites {
				b, _ := os.ReadFile(filepath.Join(l.Opts.Dir, s.Name+".log"))
				t.Logf("xwand %s log:\n%s", s.Name, b)
			}
		}
		l.Close()
		if left := namespaces(prefix + "-"); len(left) != 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	if err := l.WaitPaths(paths, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return l
}

// capture runs tcpdump in a namespace until stop is called and returns
// the pcap bytes; it returns once tcpdump is listening.
func capture(t *testing.T, ns, ifname, filter string) (stop func() []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cap.pcap")
	cmd := nsCommand(context.Background(), ns, "tcpdump", "-i", ifname, "--immediate-mode", "-U", "-n", "-w", file, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("tcpdump did not start listening")
	}
	return func() []byte {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// follow collects a site's events from now on.
type follower struct {
	mu     sync.Mutex
	events []events.Event
	cancel func()
}

func follow(t *testing.T, s *Site) *follower {
	f := &follower{}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	t.Cleanup(cancel)
	started := make(chan struct{})
	go func() {
		once := sync.Once{}
		_ = s.Client().Follow(ctx, func(e events.Event) bool {
			once.Do(func() { close(started) })
			f.mu.Lock()
			f.events = append(f.events, e)
			f.mu.Unlock()
			return true
		})
	}()
	select {
	case <-started: // the history arrived: the stream is live
	case <-time.After(10 * time.Second):
		t.Fatal("event stream did not start")
	}
	return f
}

// wait waits until n events of type typ with seq > after have arrived.
func (f *follower) wait(t *testing.T, typ events.Type, after uint64, n int, timeout time.Duration) []events.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f.mu.Lock()
		var got []events.Event
		for _, e := range f.events {
			if e.Type == typ && e.Seq > after {
				got = append(got, e)
			}
		}
		f.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events after %s, want %d", len(got), typ, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *follower) lastSeq() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		return 0
	}
	return f.events[len(f.events)-1].Seq
}

func ping(t *testing.T, from *Site, to netip.Addr, args ...string) string {
	t.Helper()
	argv := append([]string{"ping", "-c", "5", "-i", "0.2", "-W", "2"}, args...)
	out, err := in(from.Host, append(argv, to.String())...)
	if err != nil {
		t.Fatalf("ping from %s to %s: %v", from.Name, to, err)
	}
	return out
}

func TestLab(t *testing.T) {
	l := startLab(t)
	a, b := l.Site("a"), l.Site("b")

	t.Run("traffic is encrypted", func(t *testing.T) {
		marker := []byte("xwan-cleartext!!") // 16 bytes: ping -p repeats it in the payload
		stopWAN := capture(t, l.Router, "any", fmt.Sprintf("udp port %d", TunnelPort))
		stopLAN := capture(t, a.Host, "eth0", "icmp")
		ping(t, a, b.HostAddr, "-p", hex.EncodeToString(marker))
		wan, lan := stopWAN(), stopLAN()
		if !bytes.Contains(lan, marker) {
			t.Fatalf("the marker is not in the LAN capture (%d bytes): the test proves nothing", len(lan))
		}
		if bytes.Contains(wan, marker) {
			t.Fatal("the cleartext marker crossed the Internet")
		}
		pkts, err := ReadPcapUDP(wan)
		if err != nil {
			t.Fatal(err)
		}
		appData := 0
		for _, p := range pkts {
			if len(p.Payload) < 13 || p.Payload[0] < 20 || p.Payload[0] > 23 || p.Payload[1] != 0xfe || p.Payload[2] != 0xfd {
				t.Fatalf("not a DTLS 1.2 record on the tunnel port: % x", p.Payload[:min(len(p.Payload), 16)])
			}
			if p.Payload[0] == 23 {
				appData++
			}
		}
		// 5 requests and 5 replies (each seen entering and leaving the
		// router; keepalives add more).
		if appData < 10 {
			t.Fatalf("%d DTLS application records for 10 pings", appData)
		}
	})

	t.Run("the gateway's own traffic takes the tunnel device", func(t *testing.T) {
		counter := func() float64 {
			text, err := a.Client().Metrics()
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(text, "\n") {
				if strings.HasPrefix(line, `xwan_dataplane_userspace_packets_total{what="device_to_tunnel"} `) {
					var v float64
					fmt.Sscan(strings.Fields(line)[1], &v)
					return v
				}
			}
			t.Fatal("no device_to_tunnel counter")
			return 0
		}
		before := counter()
		// From a's gateway itself (not its LAN host): routed to xwan0 and
		// classified in Go.
		if out, err := in(a.GW, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", a.GWAddr.String(), b.HostAddr.String()); err != nil {
			t.Fatalf("ping from the gateway: %v\n%s", err, out)
		}
		if got := counter() - before; got < 3 {
			t.Fatalf("%v packets went from the tunnel device to a tunnel, want 3", got)
		}
	})

	t.Run("iperf3 tcp", func(t *testing.T) {
		srv := nsCommand(context.Background(), b.Host, "iperf3", "-s", "-1", "-p", "5201")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
		if err := WaitListening(b.Host, 5201, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		out, err := in(a.Host, "iperf3", "-c", b.HostAddr.String(), "-t", "2", "-J")
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			End struct {
				SumReceived struct {
					Bytes uint64  `json:"bytes"`
					Bps   float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("iperf3 output: %v", err)
		}
		if res.End.SumReceived.Bytes < 1<<20 {
			t.Fatalf("iperf3 moved %d bytes", res.End.SumReceived.Bytes)
		}
		t.Logf("iperf3 TCP through the tunnel: %.0f Mbit/s", res.End.SumReceived.Bps/1e6)
	})

	t.Run("too big gets ICMP", func(t *testing.T) {
		st, err := a.Client().Status()
		if err != nil {
			t.Fatal(err)
		}
		out, _ := in(a.Host, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(st.InnerMTU), b.HostAddr.String())
		if !strings.Contains(out, fmt.Sprintf("mtu = %d", st.InnerMTU)) {
			t.Fatalf("no fragmentation-needed with the inner MTU %d:\n%s", st.InnerMTU, out)
		}
	})

	t.Run("garbage from an unknown address is dropped and counted", func(t *testing.T) {
		before, err := a.Client().Status()
		if err != nil {
			t.Fatal(err)
		}
		router := &testenv.Netns{Name: l.Router}
		err = router.Do(func() error {
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a.WAN[0].Addr, TunnelPort)))
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < 10; i++ {
				if _, err := c.Write([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			after, err := a.Client().Status()
			if err != nil {
				t.Fatal(err)
			}
			if got := after.WAN["unknown_peer"].Packets - before.WAN["unknown_peer"].Packets; got >= 10 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("WAN guard counted %d unknown-peer drops, want 10", after.WAN["unknown_peer"].Packets-before.WAN["unknown_peer"].Packets)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("a certificate from another CA is refused", func(t *testing.T) {
		fa := follow(t, a)
		mark := fa.lastSeq()
		dir := t.TempDir()
		if err := pki.InitCA(dir); err != nil {
			t.Fatal(err)
		}
		if err := pki.IssueSite(dir, "b", dir); err != nil {
			t.Fatal(err)
		}
		certFile, keyFile := pki.SiteFiles(dir, "b")
		cert, err := pki.LoadSiteKeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		caFile, _ := pki.CAFiles(l.CADir)
		pool, err := pki.LoadCAPool(caFile)
		if err != nil {
			t.Fatal(err)
		}
		// From b's gateway (an address a allows), posing as site b.
		gw := &testenv.Netns{Name: b.GW}
		var dialErr error
		err = gw.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := tunnel.NewSession(ctx, tunnel.SessionConfig{
				Identity: tunnel.Identity{Certificate: cert, Roots: pool},
				Link:     tunnel.Link{Name: "wan1", Addr: netip.AddrPortFrom(b.WAN[0].Addr, 0)},
				Remote:   netip.AddrPortFrom(a.WAN[0].Addr, TunnelPort),
				Site:     "a",
				Role:     tunnel.RoleClient,
			})
			if s != nil {
				s.Close()
			}
			dialErr = err
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if dialErr == nil {
			t.Fatal("a site with a foreign certificate got a session")
		}
		ev := fa.wait(t, events.PeerAuthFailure, mark, 1, 10*time.Second)
		if ev[0].Link != "wan1" || !strings.Contains(ev[0].Reason, "authority") && !strings.Contains(ev[0].Reason, "CA") {
			t.Logf("auth failure event: %+v", ev[0])
		}
		if st, err := a.Client().Status(); err != nil || st.PathsUp != 4 {
			t.Fatalf("the mesh suffered from the impostor: %+v %v", st, err)
		}
	})

	t.Run("metrics pass promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			testenv.Unavailable(t, "promtool not installed (make deps)")
		}
		text, err := a.Client().Metrics()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`xwan_path_up{link="wan1",path="1",site="b"} 1`, `xwan_lan_packets_total{reason="redirect"}`,
			`xwan_rule_packets_total{rule="site-to-site"}`, `xwan_wan_guard_packets_total{reason="unknown_peer"}`, `xwan_events_total{type="off_cloud_connect"} 4`, "xwan_path_failovers_total 0", `xwan_path_rtt_seconds{link="wan1",path="1",site="b"}`} {
			if !strings.Contains(text, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})

	t.Run("kill and restart a site", func(t *testing.T) {
		fa := follow(t, a)
		mark := fa.lastSeq()
		if err := b.Stop(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		down := fa.wait(t, events.OffCloudDisconnect, mark, 4, 20*time.Second)
		for _, e := range down {
			if e.Site != "b" || e.Reason == "" || e.Link == "" || e.Remote == "" {
				t.Fatalf("disconnect event lacks detail: %+v", e)
			}
		}
		mark = fa.lastSeq()
		if err := l.Start(b); err != nil {
			t.Fatal(err)
		}
		fa.wait(t, events.OffCloudConnect, mark, 4, 30*time.Second)
		if st, err := b.Client().Status(); err != nil || !st.AdoptedBPF {
			t.Fatalf("restarted xwand did not adopt its pinned BPF objects: %+v %v", st, err)
		}
		ping(t, a, b.HostAddr)
	})
}

// since returns the events of a type with seq > after.
func (f *follower) since(typ events.Type, after uint64) []events.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []events.Event
	for _, e := range f.events {
		if e.Type == typ && e.Seq > after {
			out = append(out, e)
		}
	}
	return out
}

func netDialUDP(local, remote netip.AddrPort) (*net.UDPConn, error) {
	return net.DialUDP("udp4", net.UDPAddrFromAddrPort(local), net.UDPAddrFromAddrPort(remote))
}
