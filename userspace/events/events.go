// Package events is xwan's event bus: typed, timestamped events (off-cloud
// connect and disconnect, link quality, failover, BGP, LAN monitoring)
// published by every part of the daemon, kept in a bounded history,
// streamed to subscribers (`xwanctl events -f`), logged as JSON lines and
// counted for Prometheus.
package events

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Type names an event kind. The values are stable: they appear in logs,
// the API and metric labels.
type Type string

const (
	OffCloudConnect    Type = "off_cloud_connect"
	OffCloudDisconnect Type = "off_cloud_disconnect"
	PeerAuthFailure    Type = "peer_auth_failure"
	HandshakeFailure   Type = "handshake_failure"
	LinkQualityAlert   Type = "link_quality_alert"
	LinkQualityClear   Type = "link_quality_clear"
	PathFailover       Type = "path_failover"
	PathFailback       Type = "path_failback"
	BGPSessionUp       Type = "bgp_session_up"
	BGPSessionDown     Type = "bgp_session_down"
	BGPRoutesAdded     Type = "bgp_routes_added"
	BGPRoutesWithdrawn Type = "bgp_routes_withdrawn"
	BGPPrefixLimit     Type = "bgp_prefix_limit"
	LANMonitorUp       Type = "lan_monitor_up"
	LANMonitorDown     Type = "lan_monitor_down"
	ConfigReloaded     Type = "config_reloaded"
	ConfigRejected     Type = "config_rejected"
)

// Event is one thing that happened.
type Event struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Type   Type              `json:"type"`
	Site   string            `json:"site,omitempty"`   // the remote site
	Link   string            `json:"link,omitempty"`   // the local WAN link
	Remote string            `json:"remote,omitempty"` // the remote endpoint
	Reason string            `json:"reason,omitempty"`
	Detail map[string]string `json:"detail,omitempty"`
}

// Bus fans events out. The zero value is not usable: use New.
type Bus struct {
	mu      sync.Mutex
	seq     uint64
	history []Event // ring of the last cap(history) events
	next    int
	subs    map[chan Event]struct{}
	log     io.Writer
	counts  map[Type]uint64
	dropped uint64
}

// New returns a bus keeping the last `keep` events, logging each as a JSON
// line to log (nil: no log).
func New(keep int, log io.Writer) *Bus {
	return &Bus{history: make([]Event, 0, keep), subs: map[chan Event]struct{}{}, log: log, counts: map[Type]uint64{}}
}

// Publish stamps and distributes an event. It never blocks: a subscriber
// that does not keep up loses events (counted in Dropped).
func (b *Bus) Publish(e Event) Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if len(b.history) < cap(b.history) {
		b.history = append(b.history, e)
	} else if cap(b.history) > 0 {
		b.history[b.next] = e
		b.next = (b.next + 1) % cap(b.history)
	}
	b.counts[e.Type]++
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			b.dropped++
		}
	}
	if b.log != nil {
		line, _ := json.Marshal(e)
		_, _ = b.log.Write(append(line, '\n'))
	}
	return e
}

// History returns the kept events, oldest first.
func (b *Bus) History() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Event, 0, len(b.history))
	out = append(out, b.history[b.next:]...)
	return append(out, b.history[:b.next]...)
}

// Subscribe returns a channel of new events and a function that ends the
// subscription.
func (b *Bus) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
		b.mu.Unlock()
	}
}

// Counts returns how many events of each type were published.
func (b *Bus) Counts() map[Type]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[Type]uint64, len(b.counts))
	for k, v := range b.counts {
		out[k] = v
	}
	return out
}

// Dropped returns how many events slow subscribers missed.
func (b *Bus) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}
