package tunnel

import (
	"fmt"
	"net/netip"
)

// Per-packet overhead of a tunnel, in bytes. Pion never fragments
// application data, so inner packets must fit one record in one datagram.
const (
	// RecordOverhead is a DTLS 1.2 record with AES-128-GCM: 13 bytes of
	// header, 8 of explicit nonce, 16 of authentication tag.
	RecordOverhead = 13 + 8 + 16
	OuterIPv4UDP   = 20 + 8
	OuterIPv6UDP   = 40 + 8
	minInnerMTU    = 68 // the smallest MTU IPv4 allows (RFC 791)
)

// InnerMTU is the largest inner packet a path can carry over a link whose
// MTU is linkMTU, when the tunnel's outer addresses are of outer's family
// (an invalid outer address counts as IPv6, the larger overhead).
func InnerMTU(linkMTU int, outer netip.Addr) (int, error) {
	outerHeaders := OuterIPv6UDP
	if outer.Unmap().Is4() {
		outerHeaders = OuterIPv4UDP
	}
	inner := linkMTU - outerHeaders - RecordOverhead - FrameHeaderLen
	if inner < minInnerMTU {
		return 0, fmt.Errorf("tunnel: link MTU %d leaves an inner MTU of %d, below %d", linkMTU, inner, minInnerMTU)
	}
	return inner, nil
}
