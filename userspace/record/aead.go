package record

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync/atomic"
)

// GCMRecordLimit is how many records one AES-GCM key may protect: 2^24.5
// full-size records keeps the confidentiality margin at about 2^-57 (RFC
// 8446 §5.5, RFC 9147 §4.5.3). A Sealer never goes past it.
const GCMRecordLimit = 23_726_566

// GCMForgeryLimit bounds the records that may fail authentication under one
// key before it must be dropped (RFC 9147 §4.5.3: 2^36 for AES-GCM).
const GCMForgeryLimit = 1 << 36

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("record: AES-128 key of %d bytes", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Sealer seals the records of one direction of one session under one key.
// It is safe for concurrent use: each record takes the next sequence number
// from one atomic counter, the only one for this key and direction.
type Sealer struct {
	aead  cipher.AEAD
	salt  [4]byte
	epoch uint16
	first uint64
	limit uint64 // first sequence number that must not be used
	next  atomic.Uint64
}

// NewSealer makes the Sealer that continues a session's sending: key and
// salt (the 4-byte write IV) of this side, the epoch, the first sequence
// number to use and how many records it may seal at most (capped at
// GCMRecordLimit; 0 means the cap).
func NewSealer(key, salt []byte, epoch uint16, firstSeq, maxRecords uint64) (*Sealer, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(salt) != 4 {
		return nil, fmt.Errorf("record: write IV of %d bytes, want 4", len(salt))
	}
	if maxRecords == 0 || maxRecords > GCMRecordLimit {
		maxRecords = GCMRecordLimit
	}
	s := &Sealer{aead: aead, epoch: epoch, first: firstSeq, limit: min(firstSeq+maxRecords, MaxSequence+1)}
	copy(s.salt[:], salt)
	s.next.Store(firstSeq)
	return s, nil
}

// Epoch is the epoch of the records this Sealer makes.
func (s *Sealer) Epoch() uint16 { return s.epoch }

// Next is the sequence number the next record will take.
func (s *Sealer) Next() uint64 { return s.next.Load() }

// Sealed is how many sequence numbers this Sealer has handed out.
func (s *Sealer) Sealed() uint64 { return min(s.next.Load(), s.limit) - s.first }

// Remaining is how many records it may still seal.
func (s *Sealer) Remaining() uint64 {
	n := s.next.Load()
	if n >= s.limit {
		return 0
	}
	return s.limit - n
}

// SealInPlace turns buf into one record of type t whose plaintext is the n
// bytes at buf[PayloadOffset:]. buf needs a capacity of at least
// Overhead+n+ScratchLen: the tag follows the plaintext, and the nonce and
// additional data are built after it (so that nothing is allocated). It
// returns the record, buf[:Overhead+n].
func (s *Sealer) SealInPlace(buf []byte, t ContentType, n int) ([]byte, error) {
	if n > MaxPlaintext {
		return nil, ErrTooLarge
	}
	seq := s.next.Add(1) - 1
	if seq >= s.limit {
		return nil, ErrExhausted
	}
	s.seal(buf, t, n, seq)
	return buf[:Overhead+n], nil
}

func (s *Sealer) seal(buf []byte, t ContentType, n int, seq uint64) {
	buf = buf[:Overhead+n+ScratchLen]
	putHeader(buf, t, s.epoch, seq, ExplicitNonceLen+n+TagLen)
	copy(buf[HeaderLen:PayloadOffset], buf[3:11]) // explicit nonce: epoch|seq
	scratch := buf[Overhead+n:]
	nonce, ad := scratch[:12], scratch[12:25]
	copy(nonce, s.salt[:])
	copy(nonce[4:], buf[3:11])
	copy(ad, buf[3:11])
	ad[8] = byte(t)
	binary.BigEndian.PutUint16(ad[9:11], VersionDTLS12)
	binary.BigEndian.PutUint16(ad[11:13], uint16(n))
	s.aead.Seal(buf[PayloadOffset:PayloadOffset], nonce, buf[PayloadOffset:PayloadOffset+n], ad)
}

// Append seals plaintext as one record of type t appended to dst.
func (s *Sealer) Append(dst []byte, t ContentType, plaintext []byte) ([]byte, error) {
	start := len(dst)
	need := Overhead + len(plaintext) + ScratchLen
	if cap(dst)-start < need {
		nd := make([]byte, start, start+need)
		copy(nd, dst)
		dst = nd
	}
	buf := dst[start : start+need]
	copy(buf[PayloadOffset:], plaintext)
	rec, err := s.SealInPlace(buf, t, len(plaintext))
	if err != nil {
		return dst, err
	}
	return dst[:start+len(rec)], nil
}

// Reseal gives a record sealed under this Sealer's key by someone else
// (the handshake library, after the hand-over) a sequence number from this
// Sealer's counter: it opens rec with the local key and seals the
// plaintext again as a new record appended to dst. rec must be of this
// Sealer's epoch.
func (s *Sealer) Reseal(dst, rec []byte) ([]byte, error) {
	h, rec, _, err := Split(rec)
	if err != nil {
		return dst, err
	}
	if h.Epoch != s.epoch {
		return dst, ErrEpoch
	}
	pt, err := openRecord(s.aead, s.salt, h, rec, make([]byte, 0, len(rec)))
	if err != nil {
		return dst, err
	}
	return s.Append(dst, h.Type, pt)
}

// Opener authenticates and decrypts the records of one direction of one
// session under one key, with its replay window. It belongs to one
// goroutine.
type Opener struct {
	aead    cipher.AEAD
	salt    [4]byte
	epoch   uint16
	window  Window
	opened  uint64
	forged  uint64
	scratch [25]byte
}

// NewOpener makes the Opener for the peer's records: its key and write IV,
// and the epoch.
func NewOpener(key, salt []byte, epoch uint16) (*Opener, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(salt) != 4 {
		return nil, fmt.Errorf("record: write IV of %d bytes, want 4", len(salt))
	}
	o := &Opener{aead: aead, epoch: epoch}
	copy(o.salt[:], salt)
	return o, nil
}

// Epoch is the epoch this Opener accepts.
func (o *Opener) Epoch() uint16 { return o.epoch }

// Opened is how many records authenticated; Forged how many did not.
func (o *Opener) Opened() uint64 { return o.opened }

// Forged is how many records failed authentication under this key.
func (o *Opener) Forged() uint64 { return o.forged }

// Highest is the highest sequence number accepted so far (0 if none).
func (o *Opener) Highest() uint64 { return o.window.last }

// Check tells whether a record with this header could be accepted: right
// epoch, not replayed, not older than the window. It changes nothing.
func (o *Opener) Check(h Header) error {
	if h.Epoch != o.epoch {
		return ErrEpoch
	}
	if h.Length < ExplicitNonceLen+TagLen {
		return ErrTruncated
	}
	if !o.window.Check(h.Seq) {
		return ErrReplayed
	}
	return nil
}

// Open authenticates rec (one record, header included, as Split returns
// it) and decrypts it in place; the plaintext is returned as a part of rec.
// The replay window is checked first and updated only after the record
// authenticated. On ErrAuth the contents of rec are destroyed (the AEAD
// clears its output): a caller that wants to try another key keeps a copy.
func (o *Opener) Open(h Header, rec []byte) ([]byte, error) {
	if err := o.Check(h); err != nil {
		return nil, err
	}
	pt, err := o.open(h, rec, rec[PayloadOffset:PayloadOffset])
	if err != nil {
		o.forged++
		return nil, err
	}
	o.window.Update(h.Seq)
	o.opened++
	return pt, nil
}

func (o *Opener) open(h Header, rec, dst []byte) ([]byte, error) {
	n := h.Length - ExplicitNonceLen - TagLen
	nonce, ad := o.scratch[:12], o.scratch[12:25]
	copy(nonce, o.salt[:])
	copy(nonce[4:], rec[HeaderLen:PayloadOffset])
	copy(ad, rec[3:11])
	ad[8] = byte(h.Type)
	binary.BigEndian.PutUint16(ad[9:11], h.Version)
	binary.BigEndian.PutUint16(ad[11:13], uint16(n))
	pt, err := o.aead.Open(dst, nonce, rec[PayloadOffset:HeaderLen+h.Length], ad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// openRecord opens one record with aead and salt into dst, without a
// replay window (Reseal, tests).
func openRecord(aead cipher.AEAD, salt [4]byte, h Header, rec, dst []byte) ([]byte, error) {
	if h.Length < ExplicitNonceLen+TagLen {
		return nil, ErrTruncated
	}
	n := h.Length - ExplicitNonceLen - TagLen
	var nonce [12]byte
	var ad [13]byte
	copy(nonce[:], salt[:])
	copy(nonce[4:], rec[HeaderLen:PayloadOffset])
	copy(ad[:], rec[3:11])
	ad[8] = byte(h.Type)
	binary.BigEndian.PutUint16(ad[9:11], h.Version)
	binary.BigEndian.PutUint16(ad[11:13], uint16(n))
	pt, err := aead.Open(dst, nonce[:], rec[PayloadOffset:HeaderLen+h.Length], ad[:])
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}
