package tunnel

import (
	"errors"
	"sync/atomic"

	"github.com/xwan-dev/xwan/userspace/record"
)

// Counters count what the tunnels' record layer drops and does, by
// reason. A gateway gives one Counters to all its sessions and listeners
// (SessionConfig.Counters, ListenerConfig.Counters) and exports Snapshot.
// The zero value is ready; all fields are updated atomically.
type Counters struct {
	Malformed   atomic.Uint64 // datagrams whose records do not parse (truncated, unknown content type or version)
	Replayed    atomic.Uint64 // records seen already, or older than the replay window
	Forged      atomic.Uint64 // records that failed authentication under every key of their session
	WrongEpoch  atomic.Uint64 // records of an epoch the session does not have
	UnknownPeer atomic.Uint64 // datagrams from an address with no session and no handshake, that do not start one
	EarlyDrops  atomic.Uint64 // application data that arrived before the session's keys and did not fit the queue
	BadFrame    atomic.Uint64 // authentic records whose frame type this side does not know
	Unexpected  atomic.Uint64 // authentic records of a type the session does not expect (handshake with no handshake running, ...)

	HandshakesRefused atomic.Uint64 // handshakes not started: too many in progress
	Rekeys            atomic.Uint64 // new keys in use after a rekey handshake
	RekeyFailures     atomic.Uint64 // rekey handshakes that failed (the old keys stay)
	PionResealed      atomic.Uint64 // handshake records pion sent after the hand-over, re-sequenced by the record layer
	PionSuppressed    atomic.Uint64 // records pion tried to send after the hand-over, dropped (alerts, application data)
	KeyExhausted      atomic.Uint64 // sends refused because a key reached its record limit
}

// Snapshot returns the counters by name (record_*, rekey_*, pion_*).
func (c *Counters) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"record_malformed":        c.Malformed.Load(),
		"record_replayed":         c.Replayed.Load(),
		"record_forged":           c.Forged.Load(),
		"record_wrong_epoch":      c.WrongEpoch.Load(),
		"record_unknown_peer":     c.UnknownPeer.Load(),
		"record_early_dropped":    c.EarlyDrops.Load(),
		"record_bad_frame":        c.BadFrame.Load(),
		"record_unexpected":       c.Unexpected.Load(),
		"handshakes_refused":      c.HandshakesRefused.Load(),
		"rekeys":                  c.Rekeys.Load(),
		"rekey_failures":          c.RekeyFailures.Load(),
		"pion_records_resealed":   c.PionResealed.Load(),
		"pion_records_suppressed": c.PionSuppressed.Load(),
		"record_key_exhausted":    c.KeyExhausted.Load(),
	}
}

// countOpenError counts a record refused by an Opener.
func (c *Counters) countOpenError(err error) {
	switch {
	case errors.Is(err, record.ErrReplayed):
		c.Replayed.Add(1)
	case errors.Is(err, record.ErrEpoch):
		c.WrongEpoch.Add(1)
	case errors.Is(err, record.ErrTruncated):
		c.Malformed.Add(1)
	default:
		c.Forged.Add(1)
	}
}
