package tunnel

import (
	"net/netip"
	"time"
)

// Event is one of Connect, Disconnect, AuthFailure and HandshakeFailure.
// Another package turns them into the product's typed events; this one only
// reports them.
type Event interface{ event() }

// PathInfo names the path an event is about.
type PathInfo struct {
	Site   string         // the remote site (empty if a listener never learned it)
	Link   string         // the local WAN link
	Remote netip.AddrPort // the remote endpoint
}

// Connect: a session's handshake completed and the peer is the site it
// should be.
type Connect struct {
	Time time.Time
	PathInfo
}

// Disconnect: an established session ended. Reason is the session's Err:
// ErrClosed, ErrPeerSilent or ErrPeerClosed.
type Disconnect struct {
	Time time.Time
	PathInfo
	Reason error
}

// AuthFailure: a handshake failed because one side refused the other's
// certificate. Reason is a *pki.AuthError when this side refused the peer,
// and wraps ErrRejectedByPeer when the peer refused this side.
type AuthFailure struct {
	Time time.Time
	PathInfo
	Reason error
}

// HandshakeFailure: a handshake failed for any other reason (timeout,
// unreachable peer, no common cipher suite), or the path's socket could not
// be opened.
type HandshakeFailure struct {
	Time time.Time
	PathInfo
	Reason error
}

func (Connect) event()          {}
func (Disconnect) event()       {}
func (AuthFailure) event()      {}
func (HandshakeFailure) event() {}
