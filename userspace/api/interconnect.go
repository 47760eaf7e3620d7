package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// The cloud-interconnect endpoints (docs/bgp.md):
//
//	GET  /v1/routes                   []Route: connected, static and dynamic (BGP) routes
//	GET  /v1/bgp                      []BGPNeighbor
//	POST /v1/bgp/{name}/enable        re-enable a neighbour (after a prefix limit, or a disable)
//	POST /v1/bgp/{name}/disable       shut a session down administratively
//	GET  /v1/monitors                 []Monitor
//	POST /v1/test-connectivity        ConnectivityRequest -> ConnectivityResult
//
// A daemon whose Provider does not implement InterconnectProvider answers
// 501; one without the section asked about (no bgp:, no lan_monitoring:)
// answers 404 with what is missing.

// InterconnectProvider is what a daemon with a cloud interconnect adds to
// Provider. The API checks for it with a type assertion.
type InterconnectProvider interface {
	Routes(ctx context.Context) ([]Route, error)
	BGPNeighbors(ctx context.Context) ([]BGPNeighbor, error)
	// SetBGPNeighbor enables or disables a neighbour by name.
	SetBGPNeighbor(ctx context.Context, name string, enable bool) error
	Monitors() ([]Monitor, error)
	// TestConnectivity probes to from from (zero: the kernel's choice) in
	// the daemon's network namespace.
	TestConnectivity(ctx context.Context, to, from netip.Addr) (ConnectivityResult, error)
}

// ErrNotConfigured is wrapped by provider errors about a section the
// configuration does not have; the API answers 404.
var ErrNotConfigured = errors.New("not configured")

// ErrNotFound is wrapped by provider errors about a name that does not
// exist (e.g. a BGP neighbour); the API answers 404.
var ErrNotFound = errors.New("not found")

// Route types.
const (
	RouteConnected = "connected" // this site's LAN prefixes
	RouteStatic    = "static"    // peers' configured prefixes, over the mesh
	RouteDynamic   = "dynamic"   // learned from a BGP neighbour
)

// Route is one route as `xwanctl routes` shows it.
type Route struct {
	Prefix string `json:"prefix"`
	Type   string `json:"type"` // connected, static, dynamic
	// NextHop is the BGP next hop of a dynamic route; empty otherwise.
	NextHop string `json:"next_hop,omitempty"`
	// Interface is where the route leads: the LAN interface, the tunnel
	// device, or the interface towards the next hop.
	Interface string `json:"interface,omitempty"`
	Metric    int    `json:"metric"`
	// Peer is where the route comes from: the peer site of a static
	// route, the BGP neighbour of a dynamic one.
	Peer      string   `json:"peer,omitempty"`
	LocalPref uint32   `json:"local_pref,omitempty"`
	MED       uint32   `json:"med,omitempty"`
	ASPath    []uint32 `json:"as_path,omitempty"`
	// Active marks the route that forwards the prefix.
	Active bool `json:"active"`
	// Rejected: received from a neighbour whose routes are not accepted.
	Rejected bool `json:"rejected,omitempty"`
	// State of a static route's site: up when at least one path is up.
	State string `json:"state,omitempty"`
	// Datapath is the LAN program's destination entry for the prefix of
	// an active route: local, mesh or backhaul; empty when absent.
	Datapath string `json:"datapath,omitempty"`
	Note     string `json:"note,omitempty"`
}

// BGPNeighbor is one neighbour as `xwanctl bgp` shows it.
type BGPNeighbor struct {
	Name       string    `json:"name"`
	Peer       string    `json:"peer"`
	PeerASN    uint32    `json:"peer_asn"`
	LocalASN   uint32    `json:"local_asn"`
	State      string    `json:"state"`       // idle, connect, active, opensent, openconfirm, established
	AdminState string    `json:"admin_state"` // up, down, prefix-limit
	Since      time.Time `json:"since,omitzero"`
	UptimeSec  float64   `json:"uptime_seconds,omitempty"`
	// Negotiated while established, configured otherwise.
	HoldTimeSec     float64   `json:"hold_time_seconds"`
	KeepaliveSec    float64   `json:"keepalive_seconds"`
	ConnectRetrySec float64   `json:"connect_retry_seconds"`
	Metric          int       `json:"metric"`
	LocalPref       uint32    `json:"local_pref"`
	Received        uint64    `json:"prefixes_received"`
	Accepted        uint64    `json:"prefixes_accepted"`
	Advertised      uint64    `json:"prefixes_advertised"`
	Active          int       `json:"routes_active"`
	MaxReceived     uint32    `json:"max_received,omitempty"`
	MaxAdvertised   int       `json:"max_advertised,omitempty"`
	Suppressed      int       `json:"advertise_suppressed,omitempty"`
	Flaps           uint32    `json:"flaps,omitempty"`
	LastError       string    `json:"last_error,omitempty"`
	LastErrorAt     time.Time `json:"last_error_at,omitzero"`
	RestartAt       time.Time `json:"restart_at,omitzero"`
}

// Monitor is one monitored host.
type Monitor struct {
	Name        string    `json:"name"`
	Address     string    `json:"address"`
	Source      string    `json:"source,omitempty"`
	State       string    `json:"state"` // unknown, up, down
	Since       time.Time `json:"since,omitzero"`
	IntervalSec float64   `json:"interval_seconds"`
	Loss        float64   `json:"loss"` // over the window, 0..1
	RTTSec      float64   `json:"rtt_seconds,omitempty"`
	LastOutcome string    `json:"last_outcome,omitempty"` // success, failed, error
	LastReason  string    `json:"last_reason,omitempty"`
}

// ConnectivityRequest asks xwand to probe To (from From, optional).
type ConnectivityRequest struct {
	To   string `json:"to"`
	From string `json:"from,omitempty"`
}

// Connectivity outcomes.
const (
	ConnectivitySuccess = "success" // a reply came back
	ConnectivityFailed  = "failed"  // sent, no reply (or an ICMP error)
	ConnectivityError   = "error"   // could not be sent
)

// ConnectivityResult is the answer of a connectivity test.
type ConnectivityResult struct {
	Outcome string  `json:"outcome"`
	To      string  `json:"to"`
	From    string  `json:"from,omitempty"`
	RTTSec  float64 `json:"rtt_seconds,omitempty"`
	Reason  string  `json:"reason,omitempty"`
}

// registerInterconnect adds the endpoints above to mux.
func registerInterconnect(mux *http.ServeMux, p Provider) {
	ip, _ := p.(InterconnectProvider)
	handle := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, ip InterconnectProvider)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if ip == nil {
				http.Error(w, "this xwand has no cloud interconnect support", http.StatusNotImplemented)
				return
			}
			fn(w, r, ip)
		})
	}
	handle("GET /v1/routes", func(w http.ResponseWriter, r *http.Request, ip InterconnectProvider) {
		answer(w, func() (any, error) { return ip.Routes(r.Context()) })
	})
	handle("GET /v1/bgp", func(w http.ResponseWriter, r *http.Request, ip InterconnectProvider) {
		answer(w, func() (any, error) { return ip.BGPNeighbors(r.Context()) })
	})
	for _, action := range []string{"enable", "disable"} {
		handle("POST /v1/bgp/{name}/"+action, func(w http.ResponseWriter, r *http.Request, ip InterconnectProvider) {
			answer(w, func() (any, error) {
				return "ok", ip.SetBGPNeighbor(r.Context(), r.PathValue("name"), action == "enable")
			})
		})
	}
	handle("GET /v1/monitors", func(w http.ResponseWriter, r *http.Request, ip InterconnectProvider) {
		answer(w, func() (any, error) { return ip.Monitors() })
	})
	handle("POST /v1/test-connectivity", func(w http.ResponseWriter, r *http.Request, ip InterconnectProvider) {
		var req ConnectivityRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		to, err := netip.ParseAddr(req.To)
		if err != nil {
			http.Error(w, fmt.Sprintf("to: %q is not an IP address", req.To), http.StatusBadRequest)
			return
		}
		var from netip.Addr
		if req.From != "" {
			if from, err = netip.ParseAddr(req.From); err != nil {
				http.Error(w, fmt.Sprintf("from: %q is not an IP address", req.From), http.StatusBadRequest)
				return
			}
		}
		// Three probes of at most 1 s each: 10 s is plenty.
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		answer(w, func() (any, error) { return ip.TestConnectivity(ctx, to, from) })
	})
}

// answer replies with v as JSON, or with the error: 404 for what is not
// configured or not found, 500 otherwise.
func answer(w http.ResponseWriter, get func() (any, error)) {
	v, err := get()
	switch {
	case errors.Is(err, ErrNotConfigured), errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// --- client ----------------------------------------------------------------

func (c *Client) post(ctx context.Context, path string, body, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://xwand"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("is xwand running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("xwand: %s", bytes.TrimSpace(msg))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Routes fetches /v1/routes.
func (c *Client) Routes() ([]Route, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	var rs []Route
	return rs, c.get(ctx, "/v1/routes", &rs)
}

// BGPNeighbors fetches /v1/bgp.
func (c *Client) BGPNeighbors() ([]BGPNeighbor, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	var ns []BGPNeighbor
	return ns, c.get(ctx, "/v1/bgp", &ns)
}

// SetBGPNeighbor enables or disables a neighbour.
func (c *Client) SetBGPNeighbor(name string, enable bool) error {
	ctx, cancel := withTimeout()
	defer cancel()
	action := "disable"
	if enable {
		action = "enable"
	}
	var ok string
	return c.post(ctx, "/v1/bgp/"+url.PathEscape(name)+"/"+action, struct{}{}, &ok)
}

// Monitors fetches /v1/monitors.
func (c *Client) Monitors() ([]Monitor, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	var ms []Monitor
	return ms, c.get(ctx, "/v1/monitors", &ms)
}

// TestConnectivity asks xwand to probe to (from from, if valid).
func (c *Client) TestConnectivity(to, from netip.Addr) (ConnectivityResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := ConnectivityRequest{To: to.String()}
	if from.IsValid() {
		req.From = from.String()
	}
	var res ConnectivityResult
	return res, c.post(ctx, "/v1/test-connectivity", req, &res)
}
