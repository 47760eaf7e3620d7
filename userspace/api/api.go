// Package api is xwand's local control API: HTTP with JSON over a unix
// socket that only root can open (the socket is 0600 in a 0700 directory).
// xwanctl is its client. Endpoints:
//
//	GET /v1/status            Status
//	GET /v1/paths             []Path
//	GET /v1/flows             []Flow
//	GET /v1/events            []events.Event (the kept history)
//	GET /v1/events?follow=1   history, then new events as they happen (JSON lines)
//	GET /metrics              Prometheus metrics (also served on metrics.address)
//
// and the cloud-interconnect endpoints of interconnect.go (routes, bgp,
// monitors, test-connectivity).
package api

import (
	"net/http"
	"time"

	"github.com/xwan-dev/xwan/userspace/events"
)

// Status is the daemon at a glance.
type Status struct {
	Site       string             `json:"site"`
	Role       string             `json:"role"`
	Started    time.Time          `json:"started"`
	Generation uint32             `json:"rule_generation"`
	Rules      int                `json:"rules"`
	PathsUp    int                `json:"paths_up"`
	PathsTotal int                `json:"paths_total"`
	InnerMTU   int                `json:"inner_mtu"`
	Links      []Link             `json:"links"`
	Reasons    map[string]Counter `json:"reasons"`   // LAN program verdicts
	WAN        map[string]Counter `json:"wan_guard"` // WAN program verdicts
	AdoptedBPF bool               `json:"adopted_bpf"`
}

// Link is one WAN link.
type Link struct {
	Name       string `json:"name"`
	Interface  string `json:"interface"`
	Address    string `json:"address"`
	Precedence int    `json:"precedence"`
	OffCloud   bool   `json:"off_cloud"`
}

// Counter is packets and bytes.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Path is one tunnel path.
type Path struct {
	ID        uint16    `json:"id"`
	Site      string    `json:"site"`
	Link      string    `json:"link"`
	Endpoint  string    `json:"endpoint"`         // configured remote endpoint
	Remote    string    `json:"remote,omitempty"` // the remote address in use
	Dialer    bool      `json:"dialer"`           // this side dials
	State     string    `json:"state"`            // session: up, down
	Health    string    `json:"health"`           // up (acceptable), degraded (unacceptable), down
	Selected  bool      `json:"selected"`         // takes the site's new flows
	Alerts    []string  `json:"alerts,omitempty"` // metrics in alert
	RTTms     float64   `json:"rtt_ms"`           // probe round trip, mean over the window; -1: none
	JitterMs  float64   `json:"jitter_ms"`
	LossPct   float64   `json:"loss_pct"`
	Since     time.Time `json:"since"`
	Weight    uint64    `json:"weight"`
	Share     float64   `json:"share"` // of the site's table slots
	Packets   uint64    `json:"packets"`
	Bytes     uint64    `json:"bytes"`
	LastError string    `json:"last_error,omitempty"`
}

// Flow is one cached flow of the LAN program.
type Flow struct {
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	Proto     uint8   `json:"proto"`
	Sport     uint16  `json:"sport"`
	Dport     uint16  `json:"dport"`
	VLAN      uint16  `json:"vlan,omitempty"`
	Rule      string  `json:"rule"`
	Path      uint16  `json:"path"`
	Site      string  `json:"site,omitempty"`
	Transport string  `json:"transport"`
	Secondary bool    `json:"secondary,omitempty"`
	Current   bool    `json:"current"` // cached under the running rule generation
	AgeSec    float64 `json:"age_seconds"`
}

// Provider is what the daemon gives the API.
type Provider interface {
	Status() (Status, error)
	Paths() ([]Path, error)
	Flows() ([]Flow, error)
	Events() *events.Bus
	MetricsHandler() http.Handler
}
