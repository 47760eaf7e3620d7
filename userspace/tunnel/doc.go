// Package tunnel is the encrypted mesh transport of xwan: one DTLS 1.2
// session per path (a local WAN link and a remote endpoint), carrying
// one-byte-typed frames.
//
// pion/dtls does the protocol. This package pins it to what the mesh needs
// (DTLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256, mutual certificate
// authentication against the mesh CA, the expected remote site checked with
// pki.VerifySite), adds keepalives that hold NAT mappings open and notice a
// dead peer, and reports what happens to paths as plain events:
//
//   - Session: one established DTLS session.
//   - Path: dials a remote endpoint and keeps a session up, re-handshaking
//     with backoff.
//   - Listener: the server side, one UDP socket per WAN link serving every
//     peer that dials it.
//
// Choices worth knowing:
//
//   - Certificates are checked by userspace/pki alone, in pion's
//     VerifyConnection hook (VerifySite; PeerSite and AllowSite on a
//     listener), so every refusal says why: another CA, another site, no
//     certificate, an invalid one.
//   - A keepalive is an empty control frame, sent every KeepaliveInterval
//     by both ends whether or not traffic flows; SilentIntervals intervals
//     without any record from the peer end the session.
//   - The listener demultiplexes with pion's own listener (see Listener).
package tunnel
