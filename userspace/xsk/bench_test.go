package xsk

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xwan-dev/xwan/userspace/policy/policytest"
)

// xdpMD is struct xdp_md, the context of an XDP test run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// BenchmarkReceiveRelease measures Receive+Release per frame on queue 0 of
// lan0 while the kernel keeps the socket saturated: a goroutine in the
// gateway namespace runs the LAN program in live-frame mode
// (BPF_F_TEST_XDP_LIVE_FRAMES, ingress lan0, queue 0), so every run really
// redirects a 128-byte UDP frame to the socket, metadata and all. Frames
// the receiver is too slow for are dropped by the kernel and reported as
// drops/op.
func BenchmarkReceiveRelease(b *testing.B) {
	l := newLab(b)
	socks := l.open(b, Config{})
	s := socks[0]
	f := policytest.Frame{Src: hostAddr, Dst: remoteDst, Proto: 17, Sport: 5555, Dport: remotePort, Payload: make([]byte, 128-42)}
	frame := f.Bytes()
	prog := l.d.Program()

	var stop atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- l.gw.Do(func() error {
			for !stop.Load() {
				_, err := prog.Run(&ebpf.RunOptions{
					Data:    frame,
					Repeat:  1 << 14,
					Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
					Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(l.ifindex)},
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}()
	defer func() {
		stop.Store(true)
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("generator: %v", err)
			}
		case <-time.After(30 * time.Second):
			b.Error("generator did not stop within 30 s")
		}
	}()

	st0, err := s.Stats()
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]Frame, 64)
	b.ResetTimer()
	got, metaless := 0, 0
	for got < b.N {
		n, err := s.Receive(batch, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			b.Fatalf("no frame in 5 s after %d", got)
		}
		for i := range batch[:n] {
			if !batch[i].HasMeta {
				metaless++
			}
		}
		got += n
		s.Release(batch[:n])
	}
	b.StopTimer()
	st, err := s.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if metaless > 0 {
		b.Errorf("%d frames without metadata", metaless)
	}
	lost := (st.RxDropped - st0.RxDropped) + (st.RxRingFull - st0.RxRingFull)
	b.ReportMetric(float64(lost)/float64(got), "drops/op")
	b.SetBytes(int64(len(frame)))
}
