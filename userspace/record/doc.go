// Package record is xwan's DTLS 1.2 record layer for established sessions:
// the same wire format and keys as the pion/dtls session it takes over after
// the handshake, without pion's per-record allocations, goroutines and
// system calls, so a tunnel can seal and open records in batches.
//
// Only what xwan negotiates is supported: DTLS 1.2 with AES-128-GCM
// (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, RFC 5289), no connection IDs.
//
// # Wire format (RFC 6347 §4.1, RFC 5288)
//
//	header (13)   type(1) version(2)=fefd epoch(2) sequence(6) length(2)
//	explicit (8)  the nonce's explicit part: epoch(2) sequence(6), as pion
//	              and OpenSSL write it
//	ciphertext    AES-128-GCM of the plaintext, then the 16-byte tag
//
// The nonce is the 4-byte implicit IV (the "write IV" of the key block)
// followed by the 8 explicit bytes; the additional data is
// epoch|sequence(8) type(1) version(2) plaintext length(2).
//
// # Ownership of the sequence counter
//
// A Sealer owns one direction's sequence counter for one key: every record
// it seals takes the next number with one atomic add, so any number of
// goroutines may seal with it and no two records ever share a nonce. The
// Sealer starts where the handshake library stopped (Keys.LocalSeq); the
// tunnel makes sure pion sends nothing more with that key unless it goes
// through Reseal, which gives the record a number from the same counter.
// A Sealer refuses to go past its limit (at most GCMRecordLimit records per
// key), so a tunnel must rekey before.
//
// # Receiving
//
// An Opener is the other direction: it checks the replay Window before
// decrypting (cheap rejection of duplicates and records older than the
// window) and marks the sequence number only once the record authenticated,
// so a forged record cannot move the window. An Opener belongs to one
// goroutine (the socket's reader).
package record
