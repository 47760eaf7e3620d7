package monitor

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

// lanLab: a gateway namespace and a LAN host namespace on one veth.
//
//	gw: lan0 198.18.1.1/24  <---->  host: eth0 198.18.1.2/24
//
// The host routes 203.0.113.0/24 to "unreachable" (and forwards), so a
// probe to 203.0.113.9 gets an ICMP host-unreachable back.
func lanLab(t *testing.T) (gw, host *testenv.Netns) {
	t.Helper()
	gw = testenv.NewNetns(t, "xmgw")
	host = testenv.NewNetns(t, "xmh")
	testenv.Link(t, gw, "lan0", "198.18.1.1/24", host, "eth0", "198.18.1.2/24")
	host.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	host.MustRun(t, "ip", "route", "add", "unreachable", "203.0.113.0/24")
	gw.MustRun(t, "ip", "route", "add", "203.0.113.0/24", "via", "198.18.1.2")
	return gw, host
}

func TestConnectivityOutcomes(t *testing.T) {
	gw, _ := lanLab(t)
	a := netip.MustParseAddr
	tests := []struct {
		name     string
		to, from netip.Addr
		want     Outcome
		reason   string
	}{
		{"reply", a("198.18.1.2"), a("198.18.1.1"), Success, ""},
		{"reply, kernel picks the source", a("198.18.1.2"), netip.Addr{}, Success, ""},
		{"nobody at the address", a("198.18.1.77"), a("198.18.1.1"), Failed, ""},
		{"icmp unreachable", a("203.0.113.9"), netip.Addr{}, Failed, "destination unreachable (host unreachable) reported by 198.18.1.2"},
		{"no route", a("192.0.2.1"), netip.Addr{}, Error, "no route to 192.0.2.1"},
		{"source not on this host", a("198.18.1.2"), a("198.18.9.9"), Error, "source address 198.18.9.9 is not on this host"},
		{"invalid destination", netip.Addr{}, netip.Addr{}, Error, "invalid destination address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var res Result
			start := time.Now()
			// The socket must be created inside the gateway namespace.
			if err := gw.Do(func() error { res = TestConnectivity(ctx, tc.to, tc.from); return nil }); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if res.Outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", res.Outcome, res.Reason, tc.want)
			}
			if tc.reason != "" && res.Reason != tc.reason {
				t.Errorf("reason %q, want %q", res.Reason, tc.reason)
			}
			switch tc.want {
			case Success:
				if res.RTT <= 0 || res.RTT > time.Second || res.Reason != "" {
					t.Errorf("success with rtt %s reason %q", res.RTT, res.Reason)
				}
			case Failed:
				if tc.reason == "" && !strings.HasPrefix(res.Reason, "no reply within") {
					t.Errorf("reason %q, want a timeout", res.Reason)
				}
				if tc.reason == "" && took < 2*time.Second {
					t.Errorf("gave up after %s, before three probes", took)
				}
			case Error:
				if took > time.Second {
					t.Errorf("an unsendable probe took %s", took)
				}
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var res Result
		start := time.Now()
		if err := gw.Do(func() error { res = TestConnectivity(ctx, a("198.18.1.78"), netip.Addr{}); return nil }); err != nil {
			t.Fatal(err)
		}
		// .78 was never asked for, so ARP is still resolving when the
		// context ends.
		if took := time.Since(start); res.Outcome != Failed || took > time.Second || took < 250*time.Millisecond {
			t.Errorf("after %s: %+v, want Failed within the context's 300ms", time.Since(start), res)
		}
	})
}

func TestMonitorLinkDownAndUp(t *testing.T) {
	gw, host := lanLab(t)
	var mu sync.Mutex
	var events []Event
	m, err := New([]Target{{
		Name: "vnet-vm", Address: netip.MustParseAddr("198.18.1.2"), Source: netip.MustParseAddr("198.18.1.1"),
		Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, DownAfter: 3, UpAfter: 2,
	}}, Options{Logger: quiet(), OnEvent: func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	// Start opens the socket: do it inside the gateway namespace.
	if err := gw.Do(func() error { return m.Start(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	wait := func(what string, want ...State) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			mu.Lock()
			var got []State
			for _, e := range events {
				got = append(got, e.State)
			}
			mu.Unlock()
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: states %v, want %v", what, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("up", StateUp)
	host.MustRun(t, "ip", "link", "set", "eth0", "down")
	down := time.Now()
	wait("down", StateUp, StateDown)
	// Three failed probes at 200 ms intervals: well under 2 s.
	if d := time.Since(down); d > 2*time.Second {
		t.Errorf("down detected after %s", d)
	}
	host.MustRun(t, "ip", "link", "set", "eth0", "up")
	wait("up again", StateUp, StateDown, StateUp)

	mu.Lock()
	e := events[1]
	mu.Unlock()
	if e.Previous != StateUp || e.Reason != "3 consecutive probes failed" || e.LastResult.Outcome == Success {
		t.Errorf("down event = %+v", e)
	}
	if st := m.Status()[0]; st.State != StateUp || st.LastRTT <= 0 {
		t.Errorf("status = %+v", st)
	}
}
