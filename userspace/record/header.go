package record

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ContentType is a DTLS record's first byte.
type ContentType uint8

// Content types (RFC 6347; 25 is RFC 9146's connection ID record, which
// xwan does not negotiate).
const (
	ChangeCipherSpec ContentType = 20
	Alert            ContentType = 21
	Handshake        ContentType = 22
	ApplicationData  ContentType = 23
)

// Sizes, in bytes.
const (
	HeaderLen        = 13 // type, version, epoch, sequence number, length
	ExplicitNonceLen = 8
	TagLen           = 16
	// PayloadOffset is where a record's plaintext (or ciphertext) starts.
	PayloadOffset = HeaderLen + ExplicitNonceLen
	// Overhead is what AES-128-GCM adds to a plaintext.
	Overhead = PayloadOffset + TagLen
	// MaxPlaintext is the largest plaintext a record may carry (RFC 6347:
	// 2^14).
	MaxPlaintext = 1 << 14
	// ScratchLen is the room Sealer.SealInPlace needs after a record's tag.
	ScratchLen = 12 + 13
)

// VersionDTLS12 is DTLS 1.2 on the wire; VersionDTLS10 may appear in the
// record layer of a ClientHello.
const (
	VersionDTLS12 uint16 = 0xfefd
	VersionDTLS10 uint16 = 0xfeff
)

// MaxSequence is the largest 48-bit sequence number.
const MaxSequence = 1<<48 - 1

// Why a record was refused. Tunnels count drops by these reasons.
var (
	ErrTruncated   = errors.New("record: truncated")            // shorter than its header says, or than a header
	ErrContentType = errors.New("record: unknown content type") // not 20-23
	ErrVersion     = errors.New("record: not DTLS 1.0/1.2")
	ErrEpoch       = errors.New("record: unexpected epoch")
	ErrReplayed    = errors.New("record: replayed or too old")
	ErrAuth        = errors.New("record: authentication failed")
	ErrExhausted   = errors.New("record: key used up (sequence limit reached): rekey")
	ErrTooLarge    = errors.New("record: plaintext too large")
)

// Header is a parsed record header.
type Header struct {
	Type    ContentType
	Version uint16
	Epoch   uint16
	Seq     uint64 // 48 bits
	Length  int    // of what follows the header
}

func (h Header) String() string {
	return fmt.Sprintf("type=%d version=%04x epoch=%d seq=%d length=%d", h.Type, h.Version, h.Epoch, h.Seq, h.Length)
}

// Split parses the first record of a datagram and returns its header, the
// record (header included) and what follows it (more records, or nothing).
// A datagram may carry several records (handshake flights do); each is
// parsed on its own, so one bad record does not hide the others only if the
// lengths still frame them: after an error, the rest of the datagram is
// unusable.
func Split(b []byte) (h Header, rec, rest []byte, err error) {
	if len(b) < HeaderLen {
		return h, nil, nil, ErrTruncated
	}
	h.Type = ContentType(b[0])
	h.Version = binary.BigEndian.Uint16(b[1:3])
	h.Epoch = binary.BigEndian.Uint16(b[3:5])
	h.Seq = uint64(b[5])<<40 | uint64(b[6])<<32 | uint64(binary.BigEndian.Uint32(b[7:11]))
	h.Length = int(binary.BigEndian.Uint16(b[11:13]))
	if h.Type < ChangeCipherSpec || h.Type > ApplicationData {
		return h, nil, nil, ErrContentType
	}
	if h.Version != VersionDTLS12 && h.Version != VersionDTLS10 {
		return h, nil, nil, ErrVersion
	}
	end := HeaderLen + h.Length
	if end > len(b) {
		return h, nil, nil, ErrTruncated
	}
	return h, b[:end], b[end:], nil
}

// putHeader writes a DTLS 1.2 header.
func putHeader(b []byte, t ContentType, epoch uint16, seq uint64, length int) {
	b[0] = byte(t)
	binary.BigEndian.PutUint16(b[1:3], VersionDTLS12)
	binary.BigEndian.PutUint64(b[3:11], uint64(epoch)<<48|seq)
	binary.BigEndian.PutUint16(b[11:13], uint16(length))
}

// IsClientHello tells whether a handshake record starts a ClientHello
// (handshake message type 1) in epoch 0: what opens a new handshake.
func IsClientHello(h Header, rec []byte) bool {
	return h.Type == Handshake && h.Epoch == 0 && len(rec) > HeaderLen && rec[HeaderLen] == 1
}
