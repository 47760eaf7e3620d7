package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the probe wire format this package writes.
const Version = 1

// Len is the length of a version 1 probe or probe reply payload (the bytes
// after the tunnel's frame type byte).
const Len = 36

// Flags.
const (
	// FlagEcho: the echo fields (EchoSeq, EchoSent, Hold) are valid. Every
	// reply sets it; a probe does not.
	FlagEcho uint8 = 1 << 0
)

// Wire errors.
var (
	ErrShort   = errors.New("probe: payload too short")
	ErrVersion = errors.New("probe: unknown version")
)

// Packet is the payload of a probe frame (tunnel.FrameProbe) and of a
// probe reply frame (tunnel.FrameProbeReply); the frame type says which.
//
// Layout of version 1 (36 bytes, big endian, every 64-bit field 8-byte
// aligned):
//
//	offset  size  field
//	0       1     version (1)
//	1       1     flags (bit 0: echo fields valid)
//	2       2     reserved, sent as 0, ignored
//	4       4     seq: the sender's sequence number (probes and replies
//	              are counted separately)
//	8       8     sent: the sender's send time, ns on its own monotonic
//	              clock (an arbitrary epoch: only differences matter)
//	16      8     echo sent: the probe's sent field, copied back
//	24      8     hold: ns the responder held the probe, from receiving it
//	              to sending the reply (responder's clock)
//	32      4     echo seq: the probe's seq, copied back
//
// The prober computes RTT = now - echo sent - hold on its own clock, so
// the two clocks need not agree. Bytes after the first 36 are ignored (a
// later version may pad probes, e.g. to probe the path MTU); a version
// other than 1 is refused: the layout is only known for version 1.
type Packet struct {
	Flags    uint8
	Seq      uint32
	Sent     uint64
	EchoSeq  uint32
	EchoSent uint64
	Hold     uint64
}

// Append appends the version 1 encoding of p to b.
func (p Packet) Append(b []byte) []byte {
	var w [Len]byte
	w[0] = Version
	w[1] = p.Flags
	binary.BigEndian.PutUint32(w[4:], p.Seq)
	binary.BigEndian.PutUint64(w[8:], p.Sent)
	binary.BigEndian.PutUint64(w[16:], p.EchoSent)
	binary.BigEndian.PutUint64(w[24:], p.Hold)
	binary.BigEndian.PutUint32(w[32:], p.EchoSeq)
	return append(b, w[:]...)
}

// Marshal returns the version 1 encoding of p.
func (p Packet) Marshal() []byte { return p.Append(make([]byte, 0, Len)) }

// Unmarshal decodes a probe or reply payload. It does not keep b.
func Unmarshal(b []byte) (Packet, error) {
	if len(b) < 1 {
		return Packet{}, ErrShort
	}
	if b[0] != Version {
		return Packet{}, fmt.Errorf("%w %d", ErrVersion, b[0])
	}
	if len(b) < Len {
		return Packet{}, fmt.Errorf("%w: %d bytes, version 1 has %d", ErrShort, len(b), Len)
	}
	return Packet{
		Flags:    b[1],
		Seq:      binary.BigEndian.Uint32(b[4:]),
		Sent:     binary.BigEndian.Uint64(b[8:]),
		EchoSent: binary.BigEndian.Uint64(b[16:]),
		Hold:     binary.BigEndian.Uint64(b[24:]),
		EchoSeq:  binary.BigEndian.Uint32(b[32:]),
	}, nil
}
