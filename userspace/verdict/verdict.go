// Package verdict names what the LAN XDP program decides about a frame: the
// reason counted for it and the metadata it writes in front of the frame.
// The values mirror bpf/include/xwan_types.h exactly; the differential test
// (loader) proves the Go model and the kernel agree on them.
package verdict

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Reason is why a frame got its verdict; the index of stats_reasons.
type Reason uint8

const (
	Redirect Reason = iota // to the AF_XDP socket of the RX queue
	NoXSK                  // pass: tunnel decision, but no socket on the queue
	NotIP                  // pass
	NoRoute                // pass: no known remote destination
	Local                  // pass: the destination is this site
	Direct                 // pass: the rule says direct
	RuleDrop               // drop: the rule says drop
	NoPath                 // drop: no usable path and no secondary transport
	TruncEth               // malformed frames (passed untouched) from here on
	TruncVLAN
	VLANDepth
	TruncIPv4
	BadIPv4
	TruncIPv6
	BadIPv6
	BadIPv6Ext
	TruncL4
	MetaFail // pass: no room for the metadata
	Internal // pass: inconsistent maps (a bug)
	NumReasons
)

var reasonNames = [...]string{
	"redirect", "no_xsk", "not_ip", "no_route", "local", "direct",
	"rule_drop", "no_path", "trunc_eth", "trunc_vlan", "vlan_depth",
	"trunc_ipv4", "bad_ipv4", "trunc_ipv6", "bad_ipv6", "bad_ipv6_ext",
	"trunc_l4", "meta_fail", "internal",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Malformed reports whether the reason is a malformed or truncated frame.
func (r Reason) Malformed() bool { return r >= TruncEth && r <= TruncL4 }

// Action is the XDP return code.
type Action uint32

const (
	Aborted Action = iota
	Drop
	Pass
	Tx
	RedirectAction
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "XDP_DROP"
	case Pass:
		return "XDP_PASS"
	case Tx:
		return "XDP_TX"
	case RedirectAction:
		return "XDP_REDIRECT"
	}
	return "XDP_ABORTED"
}

// Flags in Meta.Flags.
const (
	FlagFlowHit   uint8 = 0x01 // decided by the flow cache
	FlagSecondary uint8 = 0x02 // the rule's secondary transport was used
	FlagFragment  uint8 = 0x04 // an IP fragment
	FlagIPv6      uint8 = 0x08
)

// MetaMagic opens every metadata block ("XWAN").
const MetaMagic = 0x5857414e

// MetaLen is the size of the metadata block in front of the frame.
const MetaLen = 16

// Meta is the decision the LAN program writes right before the frame.
// Layout (little endian, 16 bytes): magic u32, generation u32, rule id u16,
// path id u16, site id u16, transport u8, flags u8.
type Meta struct {
	Generation uint32
	RuleID     uint16
	PathID     uint16
	SiteID     uint16
	Transport  uint8
	Flags      uint8
}

// ErrNoMeta means the bytes before a frame are not xwan metadata.
var ErrNoMeta = errors.New("no xwan metadata")

// ParseMeta reads the metadata from the MetaLen bytes before a frame.
func ParseMeta(b []byte) (Meta, error) {
	if len(b) < MetaLen || binary.LittleEndian.Uint32(b) != MetaMagic {
		return Meta{}, ErrNoMeta
	}
	return Meta{
		Generation: binary.LittleEndian.Uint32(b[4:]),
		RuleID:     binary.LittleEndian.Uint16(b[8:]),
		PathID:     binary.LittleEndian.Uint16(b[10:]),
		SiteID:     binary.LittleEndian.Uint16(b[12:]),
		Transport:  b[14],
		Flags:      b[15],
	}, nil
}

// Marshal is the inverse of ParseMeta.
func (m Meta) Marshal() []byte {
	b := make([]byte, MetaLen)
	binary.LittleEndian.PutUint32(b, MetaMagic)
	binary.LittleEndian.PutUint32(b[4:], m.Generation)
	binary.LittleEndian.PutUint16(b[8:], m.RuleID)
	binary.LittleEndian.PutUint16(b[10:], m.PathID)
	binary.LittleEndian.PutUint16(b[12:], m.SiteID)
	b[14], b[15] = m.Transport, m.Flags
	return b
}
