package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

// The interop tests run OpenSSL's DTLS 1.2 client and server against this
// package, with certificates made by userspace/pki, over a veth pair
// between two namespaces; they check that what pion and this package put
// on the wire is DTLS as OpenSSL knows it.

// openssl is a running `openssl s_server` or `s_client`.
type openssl struct {
	stdin io.WriteCloser // open for as long as the exchange runs
	out   *output        // stdout and stderr
	done  chan struct{}  // closed when the process has exited
}

func startOpenSSL(t *testing.T, ns *testenv.Netns, args ...string) *openssl {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		testenv.Unavailable(t, "openssl not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, append([]string{bin}, args...)...)
	o := &openssl{out: newOutput(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = o.out, o.out
	if o.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(o.done)
	}()
	t.Cleanup(func() {
		o.stdin.Close()
		select {
		case <-o.done:
		case <-time.After(5 * time.Second):
		}
		cancel()
		<-o.done
		if t.Failed() {
			t.Logf("openssl %s output:\n%s", args[0], o.out)
		}
	})
	return o
}

func (o *openssl) write(t *testing.T, data []byte) {
	t.Helper()
	if _, err := o.stdin.Write(data); err != nil {
		t.Fatal(err)
	}
}

// output collects a process's output and lets a test wait for a string.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{}, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	o.buf.Write(p)
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *output) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for !strings.Contains(o.String(), s) {
		select {
		case <-o.changed:
		case <-timeout.C:
			t.Fatalf("openssl never printed %q", s)
		}
	}
}

const opensslCipher = "ECDHE-ECDSA-AES128-GCM-SHA256"

// TestInteropOpenSSLServer: this package dials `openssl s_server`.
func TestInteropOpenSSLServer(t *testing.T) {
	goNS, sslNS := wanPair(t)
	ca := newTestCA(t)
	cert, key := ca.siteFiles("ossl")
	// -naccept 1: s_server exits when its first connection ends.
	srv := startOpenSSL(t, sslNS, "s_server", "-dtls1_2", "-accept", "4433", "-naccept", "1",
		"-cert", cert, "-key", key, "-CAfile", ca.caFile(), "-Verify", "1", "-cipher", opensslCipher)
	srv.out.waitFor(t, "ACCEPT")

	onFrame, frames := frameCollector()
	var ctr Counters
	cfg := SessionConfig{
		Identity: ca.identity("go", ca),
		// SO_BINDTODEVICE and the socket made by NewSession itself.
		Link:     Link{Name: "wan0", Addr: netip.AddrPortFrom(goWAN, 0), BindToDevice: true},
		Remote:   netip.AddrPortFrom(peerWAN, 4433),
		Site:     "ossl",
		OnFrame:  onFrame,
		Counters: &ctr,
	}
	var s *Session
	err := goNS.Do(func() error {
		var err error
		s, err = NewSession(context.Background(), cfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if err := s.Send(FrameProbe, []byte("ping-from-go")); err != nil {
		t.Fatal(err)
	}
	srv.out.waitFor(t, "\x03ping-from-go")

	srv.write(t, []byte("\x04pong-from-openssl"))
	if f := nextFrame(t, frames); f.t != FrameProbeReply || f.payload != "pong-from-openssl" {
		t.Errorf("received %v %q from openssl", f.t, f.payload)
	}
	fastPathToOpenSSL(t, s, srv, frames)

	// close_notify, as OpenSSL understands it: with its input still open,
	// s_server only ends the connection (and exits) on the peer's
	// close_notify ("DONE") or an error ("ERROR"). It buffers those
	// messages until it exits.
	s.Close()
	select {
	case <-srv.done:
	case <-time.After(waitTimeout):
		t.Fatal("s_server still runs after close_notify")
	}
	if out := srv.out.String(); !strings.Contains(out, "DONE\nshutting down SSL\nCONNECTION CLOSED") || strings.Contains(out, "ERROR") {
		t.Error("s_server did not end the connection on close_notify")
	}
	// That close_notify was the record layer's: pion's own was dropped.
	if ctr.PionSuppressed.Load() == 0 {
		t.Error("pion's close_notify was not suppressed")
	}
}

// fastPathToOpenSSL checks that after the handshake this package's record
// layer, not pion, talks to OpenSSL, both ways: a burst of frames sealed in
// one Batch (sent with sendmmsg, as UDP GSO runs when the kernel has it)
// all reach OpenSSL, and what OpenSSL sends opens with the session's keys.
func fastPathToOpenSSL(t *testing.T, s *Session, o *openssl, frames <-chan received) {
	t.Helper()
	before := s.Stats()
	batch := NewBatch()
	const n = 40
	for i := range n {
		if err := batch.Add(s, FrameControl, []byte(fmt.Sprintf("burst-%02d|", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		o.out.waitFor(t, fmt.Sprintf("\x05burst-%02d|", i))
	}
	for i := range 3 {
		o.write(t, []byte(fmt.Sprintf("\x05line-%d", i)))
		if f := nextFrame(t, frames); f.t != FrameControl || f.payload != fmt.Sprintf("line-%d", i) {
			t.Errorf("received %v %q from openssl", f.t, f.payload)
		}
	}
	if _, real := s.ep.conn.(*udpConn); real {
		if gso, _ := s.ep.conn.offload(); !gso {
			t.Error("the burst went out without UDP GSO")
		}
	}
	after := s.Stats()
	if after.Sealed < before.Sealed+n || after.Opened < before.Opened+3 || after.Keys != 1 {
		t.Errorf("record layer stats %+v after %+v: want %d more sealed, 3 more opened", after, before, n)
	}
}

// TestInteropOpenSSLClient: `openssl s_client` dials this package's
// Listener.
func TestInteropOpenSSLClient(t *testing.T) {
	goNS, sslNS := wanPair(t)
	ca := newTestCA(t)
	events := newEventLog()
	onFrame, frames := frameCollector()
	var ctr Counters
	var ln *Listener
	err := goNS.Do(func() error {
		var err error
		ln, err = Listen(ListenerConfig{
			Identity: ca.identity("go", ca),
			Link:     Link{Name: "wan0", Addr: netip.AddrPortFrom(goWAN, 4500), BindToDevice: true},
			OnFrame:  onFrame,
			OnEvent:  events.add,
			Counters: &ctr,
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	cert, key := ca.siteFiles("ossl")
	// No -cipher: which suite is used is the Go server's choice.
	cli := startOpenSSL(t, sslNS, "s_client", "-dtls1_2", "-connect", ln.Addr().String(),
		"-cert", cert, "-key", key, "-CAfile", ca.caFile(), "-verify_return_error",
		"-verify_hostname", "go.xwan.internal")

	connected := events.waitFor(t, "connect", func(e Event) bool { return kindOf(e) == "connect" }).(Connect)
	if connected.Site != "ossl" || connected.Link != "wan0" || connected.Remote.Addr() != peerWAN {
		t.Errorf("Connect %+v, want site ossl from %v on wan0", connected, peerWAN)
	}
	cli.out.waitFor(t, "Verify return code: 0 (ok)")
	for _, s := range []string{"Protocol  : DTLSv1.2", "Cipher    : " + opensslCipher} {
		if !strings.Contains(cli.out.String(), s) {
			t.Errorf("openssl s_client did not print %q", s)
		}
	}

	s := ln.Session(connected.Remote)
	if s == nil {
		t.Fatal("listener lists no session for openssl")
	}
	if err := s.Send(FrameProbe, []byte("ping-from-go")); err != nil {
		t.Fatal(err)
	}
	cli.out.waitFor(t, "\x03ping-from-go")

	cli.write(t, []byte("\x04pong-from-openssl"))
	if f := nextFrame(t, frames); f.from != s || f.t != FrameProbeReply || f.payload != "pong-from-openssl" {
		t.Errorf("received %v %q from openssl", f.t, f.payload)
	}
	fastPathToOpenSSL(t, s, cli, frames)
	if n := ctr.Forged.Load() + ctr.Malformed.Load() + ctr.Replayed.Load(); n != 0 {
		t.Errorf("%d records from openssl refused: %v", n, ctr.Snapshot())
	}

	// s_client sends close_notify when its input ends.
	cli.stdin.Close()
	e := events.waitFor(t, "disconnect", isEvent("disconnect", connected.Remote)).(Disconnect)
	if !errors.Is(e.Reason, ErrPeerClosed) {
		t.Errorf("Disconnect %+v, want ErrPeerClosed", e)
	}
}
