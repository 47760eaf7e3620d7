// Package tunnel is the encrypted mesh transport of xwan: one DTLS 1.2
// session per path (a local WAN link and a remote endpoint), carrying
// one-byte-typed frames.
//
// pion/dtls runs the handshakes, pinned to what the mesh needs (DTLS 1.2,
// ECDHE-ECDSA-AES128-GCM-SHA256, mutual certificate authentication against
// the mesh CA, the expected remote site checked with pki.VerifySite). After
// each handshake this package takes the record layer over (userspace/record):
// same wire format, same keys, rebuilt from pion's exported state, but
// records are sealed and opened in batches, in place, without pion's
// goroutines, allocations and one system call per record. It adds
// keepalives that hold NAT mappings open and notice a dead peer, rekeys by
// new handshakes, and reports what happens to paths as plain events:
//
//   - Session: one established DTLS session (its keys may change: rekeys).
//   - Path: dials a remote endpoint and keeps a session up, re-handshaking
//     with backoff.
//   - Listener: the server side, one UDP socket per WAN link serving every
//     peer that dials it.
//   - Batch: frames for any sessions, sealed at once and sent with one
//     system call per socket.
//   - Counters: drops by reason (malformed, replayed, forged, ...), rekeys.
//
// # Sockets (sock, batchConn)
//
// Every tunnel socket belongs to this package and has one reader
// goroutine. It reads with recvmmsg, with UDP GRO (several datagrams in
// one buffer) when the kernel has it, finds the peer by source address,
// and per record: application data and alerts are opened by the session's
// record layer and the frames of a whole batch go to the BatchHandler at
// once (or to the FrameHandler one by one); handshake records go to the
// handshake running with that peer; on a server socket, a ClientHello from
// an address without a running handshake starts one. Writes are sendmmsg,
// with runs of equal-sized records to one destination sent as one UDP GSO
// message. Sockets that are not *net.UDPConn (tests' in-memory network)
// are read and written one datagram at a time.
//
// # The hand-over (handshake.go)
//
// pion gets a virtual net.PacketConn: it reads the peer's handshake
// records from the reader and writes through WriteTo. When the handshake
// completes, the state (and so the next sequence number) is taken under the
// write lock, the keys are derived (record.FromPion), and from then on
// pion's writes are filtered: plaintext epoch-0 retransmissions pass, a
// retransmitted Finished is re-sealed with a number from the session's
// Sealer (the only counter of that key and direction), anything else
// (close_notify from pion's Close, alerts) is dropped. close_notify is sent
// by Session.Close with the Sealer. No two records ever share a nonce;
// TestHandoverNeverReusesNonce checks every record on the wire.
//
// # Rekeying
//
// The client side of a session runs a new handshake on the same socket and
// 5-tuple every RekeyInterval, or when a key has carried RekeyRecords
// records either way (a third of the AES-GCM limit of 2^24.5 records; the
// Sealer refuses to go further than twice that, so a session whose rekeys
// keep failing ends with ErrKeyExhausted instead of wearing the key out).
// The new session replaces the keys of the old one, with no events: the
// server, which finishes first, keeps the new keys aside and switches
// (sending too) on the client's first record under them; the client
// switches when it finishes. Both ends open late records under the old keys
// for a few seconds; records that arrive under keys the server is still
// taking over are kept and tried again. A client that restarts and dials
// again from the same address gets the same treatment.
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
//   - The replay window is 4,032 records (record.WindowSize), for
//     reordering across links.
package tunnel
