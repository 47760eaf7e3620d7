package lab

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/xwan-dev/xwan/userspace/testenv"
)

// Stream is a steady UDP stream between two LAN hosts, for measuring what
// a failover costs: every datagram carries its sequence number, and the
// receiver notes when each one arrives.
type Stream struct {
	send, recv *net.UDPConn
	interval   time.Duration
	stop       chan struct{}
	wg         sync.WaitGroup

	mu      sync.Mutex
	sent    int
	arrived map[uint32]time.Time
}

// StreamResult is what a stream saw.
type StreamResult struct {
	Sent, Received, Lost int
	MaxGap               time.Duration // longest time between two arrivals
	GapStart             time.Time     // when that gap began
	Arrivals             []time.Time   // in order of arrival
}

// StartStream sends pps datagrams a second from one site's LAN host to
// another's, on the given UDP port, until Stop.
func (l *Lab) StartStream(from, to *Site, port, pps int) (*Stream, error) {
	st := &Stream{interval: time.Second / time.Duration(pps), stop: make(chan struct{}), arrived: map[uint32]time.Time{}}
	err := (&testenv.Netns{Name: to.Host}).Do(func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(to.HostAddr, uint16(port))))
		st.recv = c
		return err
	})
	if err != nil {
		return nil, err
	}
	err = (&testenv.Netns{Name: from.Host}).Do(func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(to.HostAddr, uint16(port))))
		st.send = c
		return err
	})
	if err != nil {
		st.recv.Close()
		return nil, err
	}
	st.wg.Add(2)
	go st.receive()
	go st.transmit()
	return st, nil
}

func (st *Stream) transmit() {
	defer st.wg.Done()
	t := time.NewTicker(st.interval)
	defer t.Stop()
	buf := make([]byte, 64)
	for seq := uint32(0); ; seq++ {
		select {
		case <-st.stop:
			return
		case <-t.C:
		}
		binary.BigEndian.PutUint32(buf, seq)
		if _, err := st.send.Write(buf); err == nil {
			st.mu.Lock()
			st.sent++
			st.mu.Unlock()
		}
	}
}

func (st *Stream) receive() {
	defer st.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, err := st.recv.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < 4 {
			continue
		}
		now := time.Now()
		st.mu.Lock()
		if _, dup := st.arrived[binary.BigEndian.Uint32(buf)]; !dup {
			st.arrived[binary.BigEndian.Uint32(buf)] = now
		}
		st.mu.Unlock()
	}
}

// Received returns how many datagrams have arrived so far.
func (st *Stream) Received() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.arrived)
}

// Stop ends the stream, lets datagrams in flight arrive (a bounded
// grace), and returns what it saw.
func (st *Stream) Stop() StreamResult {
	close(st.stop)
	st.send.Close()
	grace := time.Now().Add(500 * time.Millisecond)
	for {
		st.mu.Lock()
		done := len(st.arrived) >= st.sent
		st.mu.Unlock()
		if done || time.Now().After(grace) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	st.recv.Close()
	st.wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	r := StreamResult{Sent: st.sent, Received: len(st.arrived)}
	r.Lost = r.Sent - r.Received
	for _, t := range st.arrived {
		r.Arrivals = append(r.Arrivals, t)
	}
	sort.Slice(r.Arrivals, func(i, j int) bool { return r.Arrivals[i].Before(r.Arrivals[j]) })
	for i := 1; i < len(r.Arrivals); i++ {
		if gap := r.Arrivals[i].Sub(r.Arrivals[i-1]); gap > r.MaxGap {
			r.MaxGap, r.GapStart = gap, r.Arrivals[i-1]
		}
	}
	return r
}
