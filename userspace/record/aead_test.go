package record

import (
	"bytes"
	"crypto/rand"
	"errors"
	"sync"
	"testing"

	"github.com/pion/dtls/v3/pkg/crypto/ciphersuite"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

type testKeys struct{ keyA, saltA, keyB, saltB []byte }

func newTestKeys() testKeys {
	return testKeys{randBytes(16), randBytes(4), randBytes(16), randBytes(4)}
}

// pair returns A's Sealer and B's Opener for A→B.
func (k testKeys) pair(t testing.TB, firstSeq uint64) (*Sealer, *Opener) {
	s, err := NewSealer(k.keyA, k.saltA, 1, firstSeq, 0)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener(k.keyA, k.saltA, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s, o
}

// TestSameWireAsPion: a record this package seals is byte for byte the one
// pion's GCM construction (pkg/crypto/ciphersuite) makes with the same key,
// IV, epoch and sequence number, and each side opens the other's.
func TestSameWireAsPion(t *testing.T) {
	k := newTestKeys()
	pionA, err := ciphersuite.NewGCM(k.keyA, k.saltA, k.keyB, k.saltB)
	if err != nil {
		t.Fatal(err)
	}
	pionB, err := ciphersuite.NewGCM(k.keyB, k.saltB, k.keyA, k.saltA)
	if err != nil {
		t.Fatal(err)
	}
	sealer, opener := k.pair(t, 41)
	for _, size := range []int{0, 1, 100, 1400, MaxPlaintext} {
		payload := randBytes(size)
		ours, err := sealer.Append(nil, ApplicationData, payload)
		if err != nil {
			t.Fatal(err)
		}
		seq := sealer.Next() - 1
		pkt := &recordlayer.RecordLayer{
			Header: recordlayer.Header{
				ContentType: protocol.ContentTypeApplicationData, Version: protocol.Version1_2,
				Epoch: 1, SequenceNumber: seq,
			},
			Content: &protocol.ApplicationData{Data: payload},
		}
		raw, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := pionA.Encrypt(pkt, raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("size %d: ours %x\npion's %x", size, ours[:40], theirs[:40])
		}
		// pion opens ours.
		var h recordlayer.Header
		dec, err := pionB.Decrypt(h, append([]byte(nil), ours...))
		if err != nil || !bytes.Equal(dec[HeaderLen:], payload) {
			t.Fatalf("pion could not open our record: %v", err)
		}
		// We open pion's.
		hdr, rec, _, err := Split(theirs)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := opener.Open(hdr, rec)
		if err != nil || !bytes.Equal(pt, payload) {
			t.Fatalf("could not open pion's record: %v", err)
		}
	}
}

func TestOpenerRefuses(t *testing.T) {
	k := newTestKeys()
	sealer, opener := k.pair(t, 1)
	rec, _ := sealer.Append(nil, ApplicationData, []byte("hello"))
	open := func(b []byte) error {
		h, r, _, err := Split(append([]byte(nil), b...))
		if err != nil {
			return err
		}
		_, err = opener.Open(h, r)
		return err
	}
	if err := open(rec); err != nil {
		t.Fatal(err)
	}
	if err := open(rec); !errors.Is(err, ErrReplayed) {
		t.Errorf("replay: %v", err)
	}
	for i := range rec {
		if i == 1 || i == 2 {
			continue // the version: refused by Split; covered by FuzzOpen
		}
		forged := append([]byte(nil), rec...)
		forged[i] ^= 0x40
		if err := open(forged); err == nil {
			t.Errorf("a record with byte %d changed was accepted", i)
		}
	}
	// A forged record with a far sequence number must not move the window.
	forged := append([]byte(nil), rec...)
	forged[10] = 0xff
	forged[len(forged)-1] ^= 1
	if err := open(forged); !errors.Is(err, ErrAuth) {
		t.Errorf("forged: %v", err)
	}
	rec2, _ := sealer.Append(nil, ApplicationData, []byte("next"))
	if err := open(rec2); err != nil {
		t.Errorf("the next genuine record after a forgery: %v", err)
	}
	if opener.Forged() == 0 || opener.Opened() != 2 {
		t.Errorf("opened %d forged %d", opener.Opened(), opener.Forged())
	}
	other, _ := newTestKeys().pair(t, 50)
	rec3, _ := other.Append(nil, ApplicationData, []byte("other key"))
	if err := open(rec3); !errors.Is(err, ErrAuth) {
		t.Errorf("another key: %v", err)
	}
	wrongEpoch, _ := NewSealer(k.keyA, k.saltA, 2, 100, 0)
	rec4, _ := wrongEpoch.Append(nil, ApplicationData, []byte("epoch 2"))
	if err := open(rec4); !errors.Is(err, ErrEpoch) {
		t.Errorf("epoch 2: %v", err)
	}
}

// TestSealerCounter: concurrent sealers never share a sequence number, and
// the limit is enforced.
func TestSealerCounter(t *testing.T) {
	k := newTestKeys()
	s, err := NewSealer(k.keyA, k.saltA, 1, 7, 4000)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 128)
			for range 1000 {
				rec, err := s.Append(buf[:0], ApplicationData, []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				h, _, _, _ := Split(rec)
				mu.Lock()
				if seen[h.Seq] {
					t.Errorf("sequence number %d used twice", h.Seq)
				}
				seen[h.Seq] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 4000 || !seen[7] || !seen[4006] || s.Remaining() != 0 || s.Sealed() != 4000 {
		t.Errorf("%d numbers, remaining %d, sealed %d", len(seen), s.Remaining(), s.Sealed())
	}
	if _, err := s.Append(nil, ApplicationData, nil); !errors.Is(err, ErrExhausted) {
		t.Errorf("past the limit: %v", err)
	}
	if big, _ := NewSealer(k.keyA, k.saltA, 1, 0, 1<<40); big.Remaining() != GCMRecordLimit {
		t.Errorf("limit not capped at GCMRecordLimit: %d", big.Remaining())
	}
}

func TestReseal(t *testing.T) {
	k := newTestKeys()
	s, o := k.pair(t, 1)
	// Someone else (pion) sealed seq 1 with the same key.
	other, _ := NewSealer(k.keyA, k.saltA, 1, 1, 0)
	theirs, _ := other.Append(nil, Handshake, []byte("finished"))
	ours, _ := s.Append(nil, ApplicationData, []byte("data")) // seq 1 from our counter
	again, err := s.Reseal(nil, theirs)
	if err != nil {
		t.Fatal(err)
	}
	h, rec, _, _ := Split(again)
	if h.Seq != 2 || h.Type != Handshake {
		t.Fatalf("resealed record: %v", h)
	}
	if pt, err := o.Open(h, rec); err != nil || string(pt) != "finished" {
		t.Fatalf("open resealed: %q %v", pt, err)
	}
	h, rec, _, _ = Split(ours)
	if _, err := o.Open(h, rec); err != nil {
		t.Fatal(err)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(uint64(1), []byte("hello"), uint16(0), byte(0))
	f.Add(uint64(1<<40), []byte{}, uint16(3), byte(1))
	f.Add(uint64(5), make([]byte, 1400), uint16(30), byte(0x80))
	keyA := bytes.Repeat([]byte{1}, 16)
	salt := []byte{1, 2, 3, 4}
	f.Fuzz(func(t *testing.T, seq uint64, payload []byte, at uint16, mask byte) {
		seq &= MaxSequence
		if len(payload) > MaxPlaintext {
			payload = payload[:MaxPlaintext]
		}
		s, _ := NewSealer(keyA, salt, 1, seq, 0)
		o, _ := NewOpener(keyA, salt, 1)
		rec, err := s.Append(nil, ApplicationData, payload)
		if err != nil {
			if seq+1 > MaxSequence && errors.Is(err, ErrExhausted) {
				return
			}
			t.Fatal(err)
		}
		mutated := append([]byte(nil), rec...)
		i := int(at) % len(mutated)
		mutated[i] ^= mask
		// Also feed the raw fuzz bytes as a datagram: never a panic.
		for _, d := range [][]byte{payload, mutated} {
			rest := append([]byte(nil), d...)
			for len(rest) > 0 {
				h, r, next, err := Split(rest)
				if err != nil {
					break
				}
				pt, err := o.Open(h, r)
				if err == nil && (mask != 0 || !bytes.Equal(pt, payload)) && &d[0] == &mutated[0] {
					t.Fatalf("a record changed at byte %d (mask %#x) was accepted", i, mask)
				}
				rest = next
			}
		}
	})
}
