package record

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
)

// chanConn is one end of an in-memory datagram pipe. Once divert is set,
// what arrives goes to the diverted channel instead of the reader (pion),
// the way a tunnel takes the socket over after the handshake.
type chanConn struct {
	in, peerIn chan []byte
	addr, peer net.Addr
	diverted   chan []byte
	divert     atomic.Bool
	closed     chan struct{}
}

func chanPair() (*chanConn, *chanConn) {
	a2b, b2a := make(chan []byte, 64), make(chan []byte, 64)
	aAddr, bAddr := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 2}
	a := &chanConn{in: b2a, peerIn: a2b, addr: aAddr, peer: bAddr, diverted: make(chan []byte, 64), closed: make(chan struct{})}
	b := &chanConn{in: a2b, peerIn: b2a, addr: bAddr, peer: aAddr, diverted: make(chan []byte, 64), closed: make(chan struct{})}
	return a, b
}

func (c *chanConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		select {
		case d := <-c.in:
			if c.divert.Load() {
				c.diverted <- d
				continue
			}
			return copy(p, d), c.peer, nil
		case <-c.closed:
			return 0, nil, net.ErrClosed
		}
	}
}

func (c *chanConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	select {
	case c.peerIn <- append([]byte(nil), p...):
	case <-c.closed:
		return 0, net.ErrClosed
	}
	return len(p), nil
}

func (c *chanConn) Close() error {
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	return nil
}
func (c *chanConn) LocalAddr() net.Addr                { return c.addr }
func (c *chanConn) SetDeadline(t time.Time) error      { return nil }
func (c *chanConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *chanConn) SetWriteDeadline(t time.Time) error { return nil }

func pionPair(t *testing.T) (client, server *dtls.Conn, cc, sc *chanConn) {
	t.Helper()
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	opts := func() []dtls.Option {
		return []dtls.Option{
			dtls.WithCertificates(cert), dtls.WithInsecureSkipVerify(true),
			dtls.WithCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		}
	}
	cc, sc = chanPair()
	var copts []dtls.ClientOption
	for _, o := range opts() {
		copts = append(copts, o)
	}
	var sopts []dtls.ServerOption
	for _, o := range opts() {
		sopts = append(sopts, o)
	}
	sopts = append(sopts, dtls.WithClientAuth(dtls.RequireAnyClientCert))
	client, err = dtls.ClientWithOptions(cc, cc.peer, copts...)
	if err != nil {
		t.Fatal(err)
	}
	server, err = dtls.ServerWithOptions(sc, sc.peer, sopts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- client.HandshakeContext(ctx) }()
	go func() { errs <- server.HandshakeContext(ctx) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return client, server, cc, sc
}

// TestFromPion: the keys rebuilt from pion's exported state are the ones
// pion uses: a record sealed with them is read by pion's Conn, and what
// pion's Conn writes opens with them.
func TestFromPion(t *testing.T) {
	client, server, cc, _ := pionPair(t)
	cs, ok := client.ConnectionState()
	if !ok {
		t.Fatal("no client state")
	}
	ss, ok := server.ConnectionState()
	if !ok {
		t.Fatal("no server state")
	}
	kc, err := FromPion(cs)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := FromPion(ss)
	if err != nil {
		t.Fatal(err)
	}
	if !kc.Client || ks.Client || kc.Epoch != 1 || !bytes.Equal(kc.LocalKey, ks.RemoteKey) || !bytes.Equal(kc.RemoteSalt, ks.LocalSalt) {
		t.Fatalf("client %+v\nserver %+v", kc, ks)
	}
	// The client's Finished took sequence number 0 of epoch 1.
	if kc.LocalSeq != 1 || ks.LocalSeq != 1 {
		t.Errorf("next sequence numbers %d and %d, want 1", kc.LocalSeq, ks.LocalSeq)
	}
	want, err := cs.ExportKeyingMaterial("EXPERIMENTAL xwan", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := kc.Export("EXPERIMENTAL xwan", 32); !bytes.Equal(got, want) {
		t.Errorf("exporter %x, pion's %x", got, want)
	}

	// Client → pion server.
	cc.divert.Store(true)
	sealer, err := kc.Sealer(0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := sealer.Append(nil, ApplicationData, []byte("sealed by xwan"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.WriteTo(rec, cc.peer); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := server.Read(buf)
	if err != nil || string(buf[:n]) != "sealed by xwan" {
		t.Fatalf("pion read %q, %v", buf[:n], err)
	}
	// pion server → client.
	if _, err := server.Write([]byte("sealed by pion")); err != nil {
		t.Fatal(err)
	}
	opener, err := kc.Opener()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-cc.diverted:
		h, rec, _, err := Split(d)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := opener.Open(h, rec)
		if err != nil || string(pt) != "sealed by pion" || h.Seq != 1 {
			t.Fatalf("opened %q (seq %d): %v", pt, h.Seq, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pion's record never arrived")
	}
}
