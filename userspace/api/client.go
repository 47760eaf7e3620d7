package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/xwan-dev/xwan/userspace/events"
)

// DefaultSocket is where xwand listens unless configured otherwise.
const DefaultSocket = "/run/xwan/xwand.sock"

// Client talks to xwand.
type Client struct {
	http *http.Client
}

// NewClient returns a client for the socket.
func NewClient(socket string) *Client {
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://xwand"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("is xwand running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("xwand: %s: %s", resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// Status fetches /v1/status.
func (c *Client) Status() (Status, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	var s Status
	return s, c.get(ctx, "/v1/status", &s)
}

// Paths fetches /v1/paths.
func (c *Client) Paths() ([]Path, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	var p []Path
	return p, c.get(ctx, "/v1/paths", &p)
}

// Flows fetches /v1/flows.
func (c *Client) Flows() ([]Flow, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	var f []Flow
	return f, c.get(ctx, "/v1/flows", &f)
}

// Events fetches the kept event history.
func (c *Client) Events() ([]events.Event, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	var e []events.Event
	return e, c.get(ctx, "/v1/events", &e)
}

// Follow streams events (history first) to fn until ctx ends or fn
// returns false.
func (c *Client) Follow(ctx context.Context, fn func(events.Event) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://xwand/v1/events?follow=1", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("is xwand running? %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return err
		}
		if !fn(e) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Metrics fetches the Prometheus text exposition.
func (c *Client) Metrics() (string, error) {
	ctx, cancel := withTimeout()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://xwand/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("is xwand running? %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("xwand: %s: %s", resp.Status, b)
	}
	return string(b), nil
}
