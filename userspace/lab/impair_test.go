package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

// startImpairLab builds a lab without xwand, with or without bridges.
func startImpairLab(t *testing.T, impairable bool, sites ...string) *Lab {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"nsenter", "ethtool", "ping", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "%s not installed (make deps)", tool)
		}
	}
	prefix := testenv.UniqueName("ti")
	l, err := Up(Options{Prefix: prefix, Dir: t.TempDir(), Xwand: filepath.Join(binDir, "xwand"),
		Sites: sites, NoDaemons: true, Impairable: impairable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		if left := namespaces(prefix + "-"); len(left) != 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	return l
}

type pingResult struct {
	sent, received int
	rtts           []time.Duration // in arrival order
	seqs           []int           // icmp_seq, in arrival order
	out            string
}

var (
	pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingReply   = regexp.MustCompile(`icmp_seq=(\d+) .*time=([0-9.]+) ms`)
)

// pingFrom pings from a namespace; losing replies is not an error here.
func pingFrom(t *testing.T, ns string, args ...string) pingResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := nsCommand(ctx, ns, append([]string{"ping", "-n"}, args...)...).CombinedOutput()
	r := pingResult{out: string(out)}
	m := pingSummary.FindStringSubmatch(r.out)
	if m == nil {
		t.Fatalf("ping %v: %v: no summary:\n%s", args, err, out)
	}
	r.sent, _ = strconv.Atoi(m[1])
	r.received, _ = strconv.Atoi(m[2])
	for _, m := range pingReply.FindAllStringSubmatch(r.out, -1) {
		seq, _ := strconv.Atoi(m[1])
		ms, _ := strconv.ParseFloat(m[2], 64)
		r.seqs = append(r.seqs, seq)
		r.rtts = append(r.rtts, time.Duration(ms*float64(time.Millisecond)))
	}
	return r
}

func (r pingResult) minMax() (time.Duration, time.Duration) {
	if len(r.rtts) == 0 {
		return 0, 0
	}
	return slices.Min(r.rtts), slices.Max(r.rtts)
}

func counters(t *testing.T, l *Lab, site, link string) LinkCounters {
	t.Helper()
	c, err := l.ImpairCounters(site, link)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sub is after minus before, counter by counter.
func sub(after, before Counters) Counters {
	return Counters{
		Received: after.Received - before.Received, Forwarded: after.Forwarded - before.Forwarded,
		Bytes: after.Bytes - before.Bytes, DroppedLoss: after.DroppedLoss - before.DroppedLoss,
		DroppedBlackhole: after.DroppedBlackhole - before.DroppedBlackhole,
		DroppedQueue:     after.DroppedQueue - before.DroppedQueue, Delayed: after.Delayed - before.Delayed,
		Errors: after.Errors - before.Errors, ChecksumPartial: after.ChecksumPartial - before.ChecksumPartial,
	}
}

func mustImpair(t *testing.T, l *Lab, site, link string, dir Direction, imp Impairment) {
	t.Helper()
	if err := l.Impair(site, link, dir, imp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Clear(site, link) })
}

// waitPing pings once a second until a reply comes, for at most 15 s (a
// neighbour entry may need to recover after a blackhole).
func waitPing(t *testing.T, ns string, to netip.Addr) {
	t.Helper()
	for i := 0; i < 15; i++ {
		if r := pingFrom(t, ns, "-c", "1", "-W", "1", to.String()); r.received == 1 {
			return
		}
	}
	t.Fatalf("no ping reply from %s in 15 s", to)
}

// TestImpairBridge proves on the wire what the bridges do: ping from site
// a's gateway over wan1 to the router's address on that link.
func TestImpairBridge(t *testing.T) {
	l := startImpairLab(t, true)
	a := l.Site("a")
	gw := a.WAN[0].Gateway // 198.18.101.1, the router's end of a's wan1
	const site, link = "a", "wan1"

	t.Run("topology", func(t *testing.T) {
		st := l.ImpairStatus()
		if len(st) != 4 {
			t.Fatalf("%d bridged links, want 4: %+v", len(st), st)
		}
		have := namespaces(l.Opts.Prefix + "-")
		for _, s := range l.Sites {
			for _, k := range s.WAN {
				bns := BridgeNamespace(l.Opts.Prefix, s.Name, k.Name)
				if !slices.Contains(have, bns) {
					t.Fatalf("no bridge namespace %s in %v", bns, have)
				}
				for _, ifc := range []string{"gw", "rt"} {
					out, err := in(bns, "ip", "-o", "addr", "show", "dev", ifc)
					if err != nil || strings.TrimSpace(out) != "" {
						t.Fatalf("bridge end %s in %s has addresses (or none such): %q %v", ifc, bns, out, err)
					}
				}
			}
		}
		out, err := in(a.GW, "ethtool", "-k", "wan1")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"tx-checksumming: off", "tcp-segmentation-offload: off", "generic-segmentation-offload: off"} {
			if !strings.Contains(out, want) {
				t.Fatalf("gateway wan1 offloads: no %q in\n%s", want, out)
			}
		}
	})

	t.Run("arp and 1500-byte frames", func(t *testing.T) {
		out, err := in(l.Router, "ip", "-j", "link", "show", "dev", "a-wan1")
		if err != nil {
			t.Fatal(err)
		}
		var links []struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
			t.Fatalf("router link: %v %s", err, out)
		}
		if _, err := in(a.GW, "ip", "neigh", "flush", "dev", "wan1"); err != nil {
			t.Fatal(err)
		}
		before := counters(t, l, site, link)
		// 1472 bytes of payload + 8 ICMP + 20 IP = 1500, DF set: one
		// full-MTU frame of 1514 bytes each way, not a fragment.
		r := pingFrom(t, a.GW, "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", gw.String())
		if r.received != 3 {
			t.Fatalf("%d of 3 full-size pings answered:\n%s", r.received, r.out)
		}
		after := counters(t, l, site, link)
		to, from := sub(after.ToRouter, before.ToRouter), sub(after.FromRouter, before.FromRouter)
		// The gateway had to resolve the router through the bridge: the
		// MAC it learned is the router's own (the bridge is invisible).
		out, err = in(a.GW, "ip", "-j", "neigh", "show", "dev", "wan1", gw.String())
		if err != nil {
			t.Fatal(err)
		}
		var neigh []struct {
			LLAddr string `json:"lladdr"`
		}
		if err := json.Unmarshal([]byte(out), &neigh); err != nil || len(neigh) != 1 || neigh[0].LLAddr != links[0].Address {
			t.Fatalf("gateway neighbour %s: %s, want lladdr %s (%v)", gw, out, links[0].Address, err)
		}
		if to.Forwarded < 4 || from.Forwarded < 4 || to.Bytes < 3*1514 || from.Bytes < 3*1514 {
			t.Fatalf("bridge counters: to-router %+v, from-router %+v: want an ARP exchange and 3 frames of 1514 bytes each way", to, from)
		}
		t.Logf("ARP + 3 full-size pings: to-router %d frames %d bytes, from-router %d frames %d bytes; neighbour %s", to.Forwarded, to.Bytes, from.Forwarded, from.Bytes, neigh[0].LLAddr)
	})

	t.Run("tcp crosses with finished checksums and no super-frames", func(t *testing.T) {
		before := counters(t, l, site, link)
		const size = 8 << 20
		var ln net.Listener
		err := (&testenv.Netns{Name: l.Router}).Do(func() (err error) {
			ln, err = net.Listen("tcp4", netip.AddrPortFrom(gw, 0).String())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan int64, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- -1
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			n, _ := io.Copy(io.Discard, c)
			got <- n
		}()
		var c net.Conn
		err = (&testenv.Netns{Name: a.GW}).Do(func() (err error) {
			c, err = net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		start := time.Now()
		if _, err := c.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		select {
		case n := <-got:
			if n != size {
				t.Fatalf("router received %d of %d bytes", n, size)
			}
		case <-time.After(40 * time.Second):
			t.Fatal("transfer did not end")
		}
		d := time.Since(start)
		delta := sub(counters(t, l, site, link).ToRouter, before.ToRouter)
		if delta.Errors != 0 || delta.ChecksumPartial != 0 || delta.Forwarded < size/1514 {
			t.Fatalf("to-router during 8 MiB of TCP: %+v", delta)
		}
		t.Logf("8 MiB TCP through the bridge in %s (%.0f Mbit/s): %d frames, no write errors (a super-frame could not be written), %d with unfinished checksums",
			d.Round(time.Millisecond), size*8/d.Seconds()/1e6, delta.Forwarded, delta.ChecksumPartial)
	})

	t.Run("delay", func(t *testing.T) {
		base := pingFrom(t, a.GW, "-c", "5", "-i", "0.1", "-W", "2", gw.String())
		before := counters(t, l, site, link)
		mustImpair(t, l, site, link, Both, Impairment{Delay: 40 * time.Millisecond})
		r := pingFrom(t, a.GW, "-c", "5", "-i", "0.2", "-W", "2", gw.String())
		if r.received != 5 {
			t.Fatalf("%d of 5 answered:\n%s", r.received, r.out)
		}
		lo, hi := r.minMax()
		if lo < 80*time.Millisecond || hi >= 200*time.Millisecond {
			t.Fatalf("RTT %s..%s with 40 ms each way, want ≥ 80 ms and < 200 ms:\n%s", lo, hi, r.out)
		}
		after := counters(t, l, site, link)
		if d := sub(after.ToRouter, before.ToRouter).Delayed; d < 5 {
			t.Fatalf("to-router delayed %d frames", d)
		}
		if d := sub(after.FromRouter, before.FromRouter).Delayed; d < 5 {
			t.Fatalf("from-router delayed %d frames", d)
		}
		blo, bhi := base.minMax()
		t.Logf("RTT unimpaired %s..%s; with 40 ms each way %s..%s", blo, bhi, lo, hi)
	})

	t.Run("loss one way", func(t *testing.T) {
		waitPing(t, a.GW, gw) // the neighbour is resolved before any loss
		before := counters(t, l, site, link)
		mustImpair(t, l, site, link, ToRouter, Impairment{Loss: 0.2})
		const n = 500
		r := pingFrom(t, a.GW, "-q", "-c", fmt.Sprint(n), "-i", "0.002", "-W", "1", gw.String())
		after := counters(t, l, site, link)
		to, from := sub(after.ToRouter, before.ToRouter), sub(after.FromRouter, before.FromRouter)
		lost := r.sent - r.received
		rate := float64(lost) / float64(r.sent)
		// Binomial(500, 0.2): mean 100, σ = √(500·0.2·0.8) ≈ 8.9; 12..28 %
		// is 60..140 lost, ±4.5σ: a correct bridge fails it with
		// probability < 1e-5.
		if r.sent != n || rate < 0.12 || rate > 0.28 {
			t.Fatalf("%d of %d pings lost (%.1f%%) with 20%% loss to-router; want 12..28%%", lost, r.sent, 100*rate)
		}
		// The wire agrees with ping: the bridge dropped the requests, and
		// no replies. (A few frames of another kind, a neighbour probe
		// say, may share the fate: ±5.)
		if d := int(to.DroppedLoss) - lost; d < -5 || d > 5 || from.DroppedLoss != 0 {
			t.Fatalf("ping lost %d; bridge dropped to-router %d, from-router %d", lost, to.DroppedLoss, from.DroppedLoss)
		}
		t.Logf("20%% loss to-router: %d of %d pings lost (%.1f%%); bridge dropped %d to-router, %d from-router", lost, r.sent, 100*rate, to.DroppedLoss, from.DroppedLoss)
	})

	t.Run("blackhole and clear", func(t *testing.T) {
		waitPing(t, a.GW, gw)
		before := counters(t, l, site, link)
		mustImpair(t, l, site, link, Both, Impairment{Blackhole: true})
		r := pingFrom(t, a.GW, "-c", "5", "-i", "0.1", "-W", "1", gw.String())
		if r.received != 0 {
			t.Fatalf("%d replies through a blackhole", r.received)
		}
		mid := counters(t, l, site, link)
		if d := sub(mid.ToRouter, before.ToRouter); d.DroppedBlackhole < 5 || d.Forwarded != 0 {
			t.Fatalf("blackhole to-router: %+v", d)
		}
		// One way only: the requests reach the router, the replies die.
		mustImpair(t, l, site, link, FromRouter, Impairment{Blackhole: true})
		if err := l.Impair(site, link, ToRouter, Impairment{}); err != nil {
			t.Fatal(err)
		}
		r = pingFrom(t, a.GW, "-c", "5", "-i", "0.1", "-W", "1", gw.String())
		after := counters(t, l, site, link)
		to, from := sub(after.ToRouter, mid.ToRouter), sub(after.FromRouter, mid.FromRouter)
		if r.received != 0 || to.Forwarded < 5 || from.DroppedBlackhole < 5 || from.Forwarded != 0 {
			t.Fatalf("blackhole from-router: %d replies, to-router %+v, from-router %+v", r.received, to, from)
		}
		if err := l.Clear(site, link); err != nil {
			t.Fatal(err)
		}
		waitPing(t, a.GW, gw)
		r = pingFrom(t, a.GW, "-c", "5", "-i", "0.1", "-W", "2", gw.String())
		if r.received != 5 {
			t.Fatalf("after clear: %d of 5 answered", r.received)
		}
		t.Logf("blackhole both: 0/5 replies, %d frames dropped to-router; from-router only: requests forwarded %d, replies dropped %d; clear: 5/5",
			sub(mid.ToRouter, before.ToRouter).DroppedBlackhole, to.Forwarded, from.DroppedBlackhole)
	})

	t.Run("jitter", func(t *testing.T) {
		waitPing(t, a.GW, gw)
		base := pingFrom(t, a.GW, "-c", "40", "-i", "0.05", "-W", "2", gw.String())
		blo, bhi := base.minMax()
		mustImpair(t, l, site, link, Both, Impairment{Delay: 40 * time.Millisecond, Jitter: 20 * time.Millisecond})
		// 50 ms apart, more than the 40 ms range of one way's delay:
		// FIFO order never holds a frame back, each way is U(20, 60) ms.
		r := pingFrom(t, a.GW, "-c", "40", "-i", "0.05", "-W", "2", gw.String())
		lo, hi := r.minMax()
		// RTT = 80 ms + U(−20,20) + U(−20,20). The spread of 40 samples
		// of that falls under 30 ms with probability < 1e-5 (none in
		// 300,000 simulated runs; the median spread is about 60 ms).
		if r.received != 40 || lo < 40*time.Millisecond || hi >= 200*time.Millisecond || hi-lo < 30*time.Millisecond || hi-lo < bhi-blo+20*time.Millisecond {
			t.Fatalf("jitter ±20 ms on 40 ms: %d/40, RTT %s..%s (spread %s); unimpaired spread %s", r.received, lo, hi, hi-lo, bhi-blo)
		}
		// 2 ms apart with ±20 ms jitter: without FIFO order replies would
		// overtake each other; ping prints them in arrival order.
		f := pingFrom(t, a.GW, "-c", "200", "-i", "0.002", "-W", "2", gw.String())
		if f.received < 195 || !slices.IsSorted(f.seqs) {
			t.Fatalf("fast pings with jitter: %d/200 answered, arrival order sorted: %v", f.received, slices.IsSorted(f.seqs))
		}
		t.Logf("RTT spread unimpaired %s (%s..%s); with 40±20 ms each way %s (%s..%s); 200 pings at 2 ms arrived in order", bhi-blo, blo, bhi, hi-lo, lo, hi)
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, c := range []struct {
			site, link string
			imp        Impairment
			want       string
		}{
			{"a", "wan3", Impairment{}, "no bridged link"},
			{"z", "wan1", Impairment{}, "no bridged link"},
			{"a", "wan1", Impairment{Loss: 1.5}, "probability"},
			{"a", "wan1", Impairment{Delay: time.Millisecond, Jitter: 2 * time.Millisecond}, "jitter"},
			{"a", "wan1", Impairment{Delay: time.Minute}, "at most"},
		} {
			if err := l.Impair(c.site, c.link, Both, c.imp); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Impair(%s, %s, %+v) = %v, want %q", c.site, c.link, c.imp, err, c.want)
			}
		}
	})

	t.Run("control socket and CLI", func(t *testing.T) {
		stop, err := l.ServeControl()
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		sock, err := FindControl(l.Opts.Prefix)
		if err != nil || sock != ControlSocket(l.Opts.Dir) {
			t.Fatalf("FindControl = %s %v, want %s", sock, err, ControlSocket(l.Opts.Dir))
		}
		bin := filepath.Join(t.TempDir(), "xwan-lab")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/xwan-dev/xwan/cmd/xwan-lab").CombinedOutput(); err != nil {
			t.Fatalf("building xwan-lab: %v: %s", err, out)
		}
		cli := func(args ...string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, append([]string{"impair", "--prefix", l.Opts.Prefix}, args...)...).CombinedOutput()
			return string(out), err
		}
		out, err := cli("--site", "b", "--link", "wan2", "--dir", "from-router", "--loss", "5%", "--delay", "80ms", "--jitter", "40ms")
		if err != nil {
			t.Fatalf("xwan-lab impair: %v\n%s", err, out)
		}
		to, from, err := l.Impairments("b", "wan2")
		want := Impairment{Loss: 0.05, Delay: 80 * time.Millisecond, Jitter: 40 * time.Millisecond}
		if err != nil || to != (Impairment{}) || from != want {
			t.Fatalf("after the CLI: to-router %+v, from-router %+v (%v); want from-router %+v\n%s", to, from, err, want, out)
		}
		t.Logf("xwan-lab impair printed:\n%s", out)
		if out, err := cli("--site", "b", "--link", "wan2", "--blackhole"); err != nil {
			t.Fatalf("--blackhole: %v\n%s", err, out)
		}
		if to, from, _ := l.Impairments("b", "wan2"); !to.Blackhole || !from.Blackhole {
			t.Fatalf("--blackhole (both by default): %+v %+v", to, from)
		}
		if out, err := cli("--site", "b", "--link", "wan2", "--clear"); err != nil {
			t.Fatalf("--clear: %v\n%s", err, out)
		}
		if to, from, _ := l.Impairments("b", "wan2"); to != (Impairment{}) || from != (Impairment{}) {
			t.Fatalf("--clear left %+v %+v", to, from)
		}
		for _, bad := range [][]string{
			{"--site", "b", "--link", "wan9", "--loss", "1%"},
			{"--site", "b", "--link", "wan2", "--loss", "5"},
			{"--site", "b", "--link", "wan2", "--dir", "sideways", "--loss", "1%"},
			{"--site", "b", "--link", "wan2"},
		} {
			if out, err := cli(bad...); err == nil {
				t.Fatalf("xwan-lab impair %v succeeded:\n%s", bad, out)
			}
		}
		links, err := Control(sock, ControlRequest{Op: "show"})
		if err != nil || len(links) != 4 {
			t.Fatalf("show: %d links, %v", len(links), err)
		}
		if _, err := Control(sock, ControlRequest{Op: "explode"}); err == nil {
			t.Fatal("unknown op accepted")
		}
		stop()
		if _, err := os.Stat(DirFile(l.Opts.Prefix)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still there after stop: %v", DirFile(l.Opts.Prefix), err)
		}
		if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still there after stop: %v", sock, err)
		}
	})
}

// socketFDs lists the process's open sockets.
func socketFDs(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
			m[target] = true
		}
	}
	return m
}

func bridgeGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "lab.(*pipe).forward") + strings.Count(string(buf[:n]), "lab.(*pipe).release")
}

// TestImpairTeardown: Close stops the goroutines, closes the sockets and
// removes the bridge namespaces.
func TestImpairTeardown(t *testing.T) {
	testenv.RequireRoot(t)
	sockets := socketFDs(t)
	l := startImpairLab(t, true, "a")
	if g := bridgeGoroutines(); g != 4*len(l.Sites[0].WAN) {
		t.Fatalf("%d bridge goroutines, want %d", g, 4*len(l.Sites[0].WAN))
	}
	if err := l.Impair("a", "wan1", Both, Impairment{Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	// Frames waiting in a queue must not hold Close up.
	_ = pingFrom(t, l.Site("a").GW, "-c", "3", "-i", "0.05", "-W", "1", l.Site("a").WAN[0].Gateway.String())
	if c := counters(t, l, "a", "wan1"); c.ToRouter.Queued == 0 && c.FromRouter.Queued == 0 {
		t.Logf("nothing queued at Close: %+v", c)
	}
	start := time.Now()
	l.Close()
	t.Logf("Close took %s", time.Since(start).Round(time.Millisecond))
	if g := bridgeGoroutines(); g != 0 {
		t.Fatalf("%d bridge goroutines after Close", g)
	}
	for s := range socketFDs(t) {
		if !sockets[s] {
			t.Fatalf("socket %s still open after Close", s)
		}
	}
	if left := namespaces(l.Opts.Prefix + "-"); len(left) != 0 {
		t.Fatalf("namespaces after Close: %v", left)
	}
	if err := l.Impair("a", "wan1", Both, Impairment{}); err == nil {
		t.Fatal("Impair on a closed lab succeeded")
	}
	l.Close() // twice is fine
}

// TestImpairNotImpairable: without Impairable the lab is as it always
// was: no bridge namespaces, offloads untouched, Impair refused.
func TestImpairNotImpairable(t *testing.T) {
	l := startImpairLab(t, false, "a")
	p := l.Opts.Prefix
	got := namespaces(p + "-")
	slices.Sort(got)
	if want := []string{p + "-a", p + "-a-h", p + "-inet"}; !slices.Equal(got, want) {
		t.Fatalf("namespaces %v, want %v", got, want)
	}
	out, err := in(l.Site("a").GW, "ethtool", "-k", "wan1")
	if err != nil || !strings.Contains(out, "tx-checksumming: on") {
		t.Fatalf("offloads of wan1 changed without bridges: %v\n%s", err, out)
	}
	if err := l.Impair("a", "wan1", Both, Impairment{Loss: 0.1}); err == nil || !strings.Contains(err.Error(), "Impairable") {
		t.Fatalf("Impair without bridges: %v", err)
	}
	if st := l.ImpairStatus(); len(st) != 0 {
		t.Fatalf("status without bridges: %+v", st)
	}
	if r := pingFrom(t, l.Site("a").GW, "-c", "2", "-i", "0.1", "-W", "2", l.Site("a").WAN[0].Gateway.String()); r.received != 2 {
		t.Fatalf("direct link: %d of 2 answered", r.received)
	}
}

func TestImpairParse(t *testing.T) {
	for in, want := range map[string]float64{"5%": 0.05, "0.5%": 0.005, "0.05": 0.05, "0": 0, "100%": 1, "1": 1} {
		if got, err := ParseLoss(in); err != nil || got != want {
			t.Errorf("ParseLoss(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"5", "150%", "-1%", "x", ""} {
		if _, err := ParseLoss(in); err == nil {
			t.Errorf("ParseLoss(%q) accepted", in)
		}
	}
	for in, want := range map[string]Direction{"to-router": ToRouter, "from-router": FromRouter, "both": Both, "": Both} {
		if got, err := ParseDirection(in); err != nil || got != want || (in != "" && got.String() != in) {
			t.Errorf("ParseDirection(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseDirection("up"); err == nil {
		t.Error("ParseDirection(up) accepted")
	}
	if s := (Impairment{Loss: 0.05, Delay: 80 * time.Millisecond, Jitter: 40 * time.Millisecond}).String(); s != "loss 5%, delay 80ms, jitter ±40ms" {
		t.Errorf("String = %q", s)
	}
}

// TestImpairInsertVLAN: a tag the kernel stripped goes back between the
// source MAC and the EtherType.
func TestImpairInsertVLAN(t *testing.T) {
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45}
	buf := append(make([]byte, vlanTagLen), frame...)
	got := insertVLAN(buf, len(frame), 0x8100, 0x2064)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x20, 0x64, 0x08, 0x00, 0x45}
	if !slices.Equal(got, want) {
		t.Fatalf("% x, want % x", got, want)
	}
}
