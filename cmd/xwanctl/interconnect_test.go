package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xwan-dev/xwan/userspace/api"
	"github.com/xwan-dev/xwan/userspace/events"
)

// daemon is a fake xwand with a cloud interconnect.
type daemon struct{ bus *events.Bus }

func (daemon) Status() (api.Status, error)  { return api.Status{}, nil }
func (daemon) Paths() ([]api.Path, error)   { return nil, nil }
func (daemon) Flows() ([]api.Flow, error)   { return nil, nil }
func (d daemon) Events() *events.Bus        { return d.bus }
func (daemon) MetricsHandler() http.Handler { return http.NotFoundHandler() }
func (daemon) Monitors() ([]api.Monitor, error) {
	return []api.Monitor{{Name: "vnet-vm", Address: "198.18.200.4", State: "down", Loss: 0.3, LastOutcome: "failed", LastReason: "no reply within 1s"}}, nil
}

func (daemon) Routes(context.Context) ([]api.Route, error) {
	return []api.Route{
		{Prefix: "198.18.10.0/24", Type: api.RouteConnected, Interface: "lan0", Active: true, Datapath: "local"},
		{Prefix: "198.18.200.0/24", Type: api.RouteDynamic, NextHop: "169.254.10.6", Interface: "er1", Metric: 90, Peer: "msee1",
			LocalPref: 910, ASPath: []uint32{12076}, Active: true, Datapath: "local"},
		{Prefix: "198.18.200.0/24", Type: api.RouteDynamic, NextHop: "169.254.10.2", Interface: "er2", Metric: 100, Peer: "msee2",
			LocalPref: 900, ASPath: []uint32{12076}},
	}, nil
}

func (daemon) BGPNeighbors(context.Context) ([]api.BGPNeighbor, error) {
	return []api.BGPNeighbor{
		{Name: "msee1", Peer: "169.254.10.6", PeerASN: 12076, State: "established", AdminState: "up", UptimeSec: 75,
			HoldTimeSec: 9, KeepaliveSec: 3, Received: 2, Accepted: 2, Advertised: 2, Active: 2, Metric: 90},
		{Name: "msee2", Peer: "169.254.10.2", PeerASN: 12076, State: "idle", AdminState: "prefix-limit", HoldTimeSec: 90,
			KeepaliveSec: 30, Metric: 100, LastError: "received more than 4 prefixes"},
	}, nil
}

func (daemon) SetBGPNeighbor(_ context.Context, name string, enable bool) error {
	if name != "msee2" {
		return errors.New("no such neighbor")
	}
	return nil
}

func (daemon) TestConnectivity(_ context.Context, to, from netip.Addr) (api.ConnectivityResult, error) {
	r := api.ConnectivityResult{To: to.String()}
	if from.IsValid() {
		r.From = from.String()
	}
	switch to.String() {
	case "198.18.200.4":
		r.Outcome, r.RTTSec = api.ConnectivitySuccess, 0.0012
	case "198.18.200.5":
		r.Outcome, r.Reason = api.ConnectivityFailed, "no reply within 1s"
	default:
		r.Outcome, r.Reason = api.ConnectivityError, "no route to "+to.String()
	}
	return r, nil
}

func TestInterconnectCommands(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "x.sock")
	s, err := api.Listen(sock, daemon{events.New(10, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	xwanctl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(append([]string{"--socket", sock}, args...), &out)
		return out.String(), err
	}
	for _, tc := range []struct {
		args   []string
		status int // exitStatus, -1 for another error
		want   []string
	}{
		{[]string{"routes"}, 0, []string{
			"*  connected  198.18.10.0/24   -             lan0       0       -      local",
			"*  dynamic    198.18.200.0/24  169.254.10.6  er1        90      msee1  local     as-path 12076, local-pref 910",
			"   dynamic    198.18.200.0/24  169.254.10.2  er2        100     msee2  -         as-path 12076, local-pref 900",
		}},
		{[]string{"bgp"}, 0, []string{
			"msee1     169.254.10.6  12076  established          1m15s   9s/3s           2         2         2           2       90      -",
			"msee2     169.254.10.2  12076  idle (prefix-limit)  -       90s/30s         0         0         0           0       100     received more than 4 prefixes",
		}},
		{[]string{"bgp", "enable", "msee2"}, 0, []string{"neighbor msee2 enabled"}},
		{[]string{"bgp", "enable"}, -1, nil},
		{[]string{"monitors"}, 0, []string{"vnet-vm  198.18.200.4  down   -      30%   -    failed: no reply within 1s"}},
		{[]string{"test-connectivity", "--to", "198.18.200.4"}, 0, []string{"Success: 198.18.200.4 answered in 1.2ms"}},
		{[]string{"test-connectivity", "--to", "198.18.200.5", "--from", "198.18.10.1"}, 1, []string{"Failed: 198.18.200.5 from 198.18.10.1: no reply within 1s"}},
		{[]string{"test-connectivity", "--to", "192.0.2.1"}, 2, []string{"Error: 192.0.2.1: no route to 192.0.2.1"}},
		{[]string{"--json", "test-connectivity", "--to", "192.0.2.1"}, 2, []string{`"outcome": "error"`}},
		{[]string{"test-connectivity", "--to", "nowhere"}, -1, nil},
		{[]string{"test-connectivity"}, -1, nil},
	} {
		out, err := xwanctl(tc.args...)
		var st exitStatus
		switch {
		case tc.status == 0 && err != nil, tc.status > 0 && (!errors.As(err, &st) || int(st) != tc.status):
			t.Errorf("xwanctl %v: %v, want exit status %d", tc.args, err, tc.status)
		case tc.status < 0 && (err == nil || errors.As(err, &st)):
			t.Errorf("xwanctl %v: %v, want a usage error", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("xwanctl %v: no %q in\n%s", tc.args, w, out)
			}
		}
	}
}
