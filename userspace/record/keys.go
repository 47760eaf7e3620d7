package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
)

// Keys is what the record layer of an established DTLS 1.2 session needs,
// rebuilt from the handshake library's state.
type Keys struct {
	Client     bool   // this side was the handshake's client
	Epoch      uint16 // the epoch of both directions after the handshake (1)
	LocalKey   []byte // AES-128 key this side seals with
	LocalSalt  []byte // this side's 4-byte write IV
	RemoteKey  []byte
	RemoteSalt []byte
	// LocalSeq is the first sequence number of the local epoch that the
	// handshake library had not used when the state was taken.
	LocalSeq uint64
	// MasterSecret and the randoms, for exporters (RFC 5705).
	MasterSecret               []byte
	ClientRandom, ServerRandom [32]byte
}

// The cipher suites whose record protection this package implements.
const (
	suiteECDHEECDSAAES128GCMSHA256 = 0xc02b
	suiteECDHERSAAES128GCMSHA256   = 0xc02f
)

// pionState mirrors the fields of pion/dtls v3's serializedState that the
// record layer needs; gob matches fields by name and skips the others.
type pionState struct {
	HandshakeComplete  bool
	LocalEpoch         uint16
	RemoteEpoch        uint16
	LocalRandom        [32]byte
	RemoteRandom       [32]byte
	CipherSuiteID      uint16
	MasterSecret       []byte
	SequenceNumber     uint64
	LocalConnectionID  []byte
	RemoteConnectionID []byte
	IsClient           bool
}

// FromPion rebuilds the keys of an established session from pion's
// exported state (dtls.Conn.ConnectionState): the master secret and the
// two randoms go through the TLS 1.2 PRF (pkg/crypto/prf) into the key
// block, exactly as pion's cipher suite does it. The state must be taken
// while nothing else can send with it (see the package comment).
func FromPion(state dtls.State) (Keys, error) {
	raw, err := state.MarshalBinary()
	if err != nil {
		return Keys{}, fmt.Errorf("record: exporting the DTLS state: %w", err)
	}
	var st pionState
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&st); err != nil {
		return Keys{}, fmt.Errorf("record: decoding the DTLS state: %w", err)
	}
	return keysFrom(st)
}

func keysFrom(st pionState) (Keys, error) {
	switch {
	case !st.HandshakeComplete:
		return Keys{}, errors.New("record: handshake not complete")
	case st.CipherSuiteID != suiteECDHEECDSAAES128GCMSHA256 && st.CipherSuiteID != suiteECDHERSAAES128GCMSHA256:
		return Keys{}, fmt.Errorf("record: cipher suite %#04x is not AES-128-GCM-SHA256", st.CipherSuiteID)
	case len(st.LocalConnectionID) != 0 || len(st.RemoteConnectionID) != 0:
		return Keys{}, errors.New("record: connection IDs are not supported")
	case st.LocalEpoch != st.RemoteEpoch || st.LocalEpoch == 0:
		return Keys{}, fmt.Errorf("record: epochs %d (local) and %d (remote)", st.LocalEpoch, st.RemoteEpoch)
	case len(st.MasterSecret) != 48:
		return Keys{}, fmt.Errorf("record: master secret of %d bytes", len(st.MasterSecret))
	}
	k := Keys{Client: st.IsClient, Epoch: st.LocalEpoch, LocalSeq: st.SequenceNumber, MasterSecret: st.MasterSecret}
	if st.IsClient {
		k.ClientRandom, k.ServerRandom = st.LocalRandom, st.RemoteRandom
	} else {
		k.ClientRandom, k.ServerRandom = st.RemoteRandom, st.LocalRandom
	}
	block, err := prf.GenerateEncryptionKeys(st.MasterSecret, k.ClientRandom[:], k.ServerRandom[:], 0, 16, 4, sha256.New)
	if err != nil {
		return Keys{}, err
	}
	if st.IsClient {
		k.LocalKey, k.LocalSalt, k.RemoteKey, k.RemoteSalt = block.ClientWriteKey, block.ClientWriteIV, block.ServerWriteKey, block.ServerWriteIV
	} else {
		k.LocalKey, k.LocalSalt, k.RemoteKey, k.RemoteSalt = block.ServerWriteKey, block.ServerWriteIV, block.ClientWriteKey, block.ClientWriteIV
	}
	return k, nil
}

// Sealer makes the Sealer that continues this side's sending at LocalSeq,
// for at most maxRecords records (0: GCMRecordLimit).
func (k Keys) Sealer(maxRecords uint64) (*Sealer, error) {
	return NewSealer(k.LocalKey, k.LocalSalt, k.Epoch, k.LocalSeq, maxRecords)
}

// Opener makes the Opener for the peer's records, with an empty window.
func (k Keys) Opener() (*Opener, error) {
	return NewOpener(k.RemoteKey, k.RemoteSalt, k.Epoch)
}

// Export is the RFC 5705 exporter of the session (no context), as OpenSSL's
// -keymatexport prints it.
func (k Keys) Export(label string, length int) ([]byte, error) {
	seed := append(append([]byte(label), k.ClientRandom[:]...), k.ServerRandom[:]...)
	return prf.PHash(k.MasterSecret, seed, length, sha256.New)
}
