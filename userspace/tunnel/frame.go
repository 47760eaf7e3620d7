package tunnel

import (
	"errors"
	"fmt"
)

// FrameType is the first byte of every record's plaintext: it says what the
// rest of the record carries.
type FrameType uint8

// Frame types. A control frame with an empty payload is a keepalive: the
// Session sending it and the Session receiving it handle it themselves.
const (
	FrameIPv4       FrameType = 1 // an IPv4 packet
	FrameIPv6       FrameType = 2 // an IPv6 packet
	FrameProbe      FrameType = 3 // a path-quality probe (userspace/probe)
	FrameProbeReply FrameType = 4 // the answer to a probe
	FrameControl    FrameType = 5 // endpoint updates, routes, events from the peer
)

// FrameHeaderLen is the framing overhead inside a record.
const FrameHeaderLen = 1

// Framing errors.
var (
	ErrEmptyFrame       = errors.New("tunnel: empty frame")
	ErrUnknownFrameType = errors.New("tunnel: unknown frame type")
)

func (t FrameType) String() string {
	switch t {
	case FrameIPv4:
		return "ipv4"
	case FrameIPv6:
		return "ipv6"
	case FrameProbe:
		return "probe"
	case FrameProbeReply:
		return "probe-reply"
	case FrameControl:
		return "control"
	}
	return fmt.Sprintf("frame-type-%d", uint8(t))
}

func (t FrameType) valid() bool { return t >= FrameIPv4 && t <= FrameControl }

// Encode returns the record plaintext carrying payload as a frame of type t.
func Encode(t FrameType, payload []byte) ([]byte, error) {
	if !t.valid() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownFrameType, uint8(t))
	}
	b := make([]byte, FrameHeaderLen+len(payload))
	b[0] = byte(t)
	copy(b[FrameHeaderLen:], payload)
	return b, nil
}

// Decode splits a record plaintext into its frame type and payload. The
// payload aliases b.
func Decode(b []byte) (FrameType, []byte, error) {
	if len(b) < FrameHeaderLen {
		return 0, nil, ErrEmptyFrame
	}
	t := FrameType(b[0])
	if !t.valid() {
		return 0, nil, fmt.Errorf("%w: %d", ErrUnknownFrameType, b[0])
	}
	return t, b[FrameHeaderLen:], nil
}
