package api

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xwan-dev/xwan/userspace/events"
)

// icFake is a daemon with a cloud interconnect: BGP configured, LAN
// monitoring not.
type icFake struct {
	fake
	toggled []string
}

func (f *icFake) Routes(context.Context) ([]Route, error) {
	return []Route{{Prefix: "198.18.200.0/24", Type: RouteDynamic, NextHop: "169.254.10.6", Peer: "msee1", Active: true}}, nil
}

func (f *icFake) BGPNeighbors(context.Context) ([]BGPNeighbor, error) {
	return []BGPNeighbor{{Name: "msee1", State: "established", HoldTimeSec: 9}}, nil
}

func (f *icFake) SetBGPNeighbor(_ context.Context, name string, enable bool) error {
	if name != "msee1" {
		return fmt.Errorf("%w: no BGP neighbor %q", ErrNotFound, name)
	}
	f.toggled = append(f.toggled, fmt.Sprintf("%s %v", name, enable))
	return nil
}

func (f *icFake) Monitors() ([]Monitor, error) {
	return nil, fmt.Errorf("%w: the configuration has no lan_monitoring: section", ErrNotConfigured)
}

func (f *icFake) TestConnectivity(_ context.Context, to, from netip.Addr) (ConnectivityResult, error) {
	return ConnectivityResult{Outcome: ConnectivitySuccess, To: to.String(), From: from.String(), RTTSec: 0.001}, nil
}

func TestInterconnectEndpoints(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "x.sock")
	f := &icFake{fake: fake{events.New(10, nil)}}
	s, err := Listen(sock, f)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := NewClient(sock)

	rs, err := c.Routes()
	if err != nil || len(rs) != 1 || rs[0].Peer != "msee1" || !rs[0].Active {
		t.Errorf("routes %+v %v", rs, err)
	}
	ns, err := c.BGPNeighbors()
	if err != nil || len(ns) != 1 || ns[0].HoldTimeSec != 9 {
		t.Errorf("bgp %+v %v", ns, err)
	}
	if err := c.SetBGPNeighbor("msee1", true); err != nil {
		t.Error(err)
	}
	if err := c.SetBGPNeighbor("msee1", false); err != nil {
		t.Error(err)
	}
	if err := c.SetBGPNeighbor("nobody", true); err == nil || !strings.Contains(err.Error(), `no BGP neighbor "nobody"`) {
		t.Errorf("enable of an unknown neighbour: %v", err)
	}
	if strings.Join(f.toggled, ",") != "msee1 true,msee1 false" {
		t.Errorf("toggled %v", f.toggled)
	}
	if _, err := c.Monitors(); err == nil || !strings.Contains(err.Error(), "404 Not Found: not configured: the configuration has no lan_monitoring: section") {
		t.Errorf("monitors without the section: %v", err)
	}
	res, err := c.TestConnectivity(netip.MustParseAddr("198.18.200.1"), netip.MustParseAddr("198.18.10.1"))
	if err != nil || res.Outcome != ConnectivitySuccess || res.To != "198.18.200.1" || res.From != "198.18.10.1" {
		t.Errorf("test-connectivity %+v %v", res, err)
	}
	var out ConnectivityResult
	ctx, cancel := withTimeout()
	defer cancel()
	if err := c.post(ctx, "/v1/test-connectivity", ConnectivityRequest{To: "not-an-address"}, &out); err == nil || !strings.Contains(err.Error(), `to: "not-an-address" is not an IP address`) {
		t.Errorf("bad address: %v", err)
	}
}

// A daemon without interconnect support answers 501, and the rest of the
// API is unaffected.
func TestInterconnectNotImplemented(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "x.sock")
	s, err := Listen(sock, fake{events.New(10, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := NewClient(sock)
	if _, err := c.BGPNeighbors(); err == nil || !strings.Contains(err.Error(), "501") {
		t.Errorf("got %v, want 501", err)
	}
	if _, err := c.Status(); err != nil {
		t.Error(err)
	}
}
