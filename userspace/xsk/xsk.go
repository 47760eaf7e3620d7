package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xwan-dev/xwan/userspace/verdict"
)

// Mode is how frames get into the UMEM.
type Mode uint8

const (
	// ModeAuto lets the kernel use zero-copy where the driver has it and
	// copy mode otherwise.
	ModeAuto Mode = iota
	// ModeCopy forces copy mode (XDP_COPY): works on every driver.
	ModeCopy
	// ModeZeroCopy forces zero-copy (XDP_ZEROCOPY): Open fails on a driver
	// without it (veth, for one).
	ModeZeroCopy
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeCopy:
		return "copy"
	case ModeZeroCopy:
		return "zero-copy"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Defaults for the zero fields of Config.
const (
	DefaultFrames    = 4096
	DefaultFrameSize = 4096
	DefaultRingSize  = 2048
)

// completionRingSize is the size of the completion ring, which the kernel
// requires for every UMEM even when, as here, nothing is transmitted.
const completionRingSize = 64

// Config says which queue a socket serves and how big its UMEM and rings are.
type Config struct {
	Ifindex int // interface, in the network namespace the socket is opened in
	Queue   int // RX queue of the interface
	// Frames is the number of UMEM chunks (a power of two, default 4096).
	// It is also the size of the fill ring.
	Frames int
	// FrameSize is the size of a chunk (a power of two from 2048 to the page
	// size, default 4096). A frame may be FrameSize-256 bytes long.
	FrameSize int
	// RingSize is the size of the rx ring (a power of two, default 2048).
	RingSize   int
	Mode       Mode
	NeedWakeup bool // bind with XDP_USE_NEED_WAKEUP
}

func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// withDefaults fills the zero fields and checks the result.
func (c Config) withDefaults() (Config, error) {
	if c.Frames == 0 {
		c.Frames = DefaultFrames
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	switch {
	case c.Ifindex <= 0:
		return c, fmt.Errorf("xsk: interface index %d: want a positive ifindex", c.Ifindex)
	case c.Queue < 0:
		return c, fmt.Errorf("xsk: queue %d: want 0 or more", c.Queue)
	case !isPow2(c.Frames) || c.Frames > 1<<20:
		return c, fmt.Errorf("xsk: %d frames: want a power of two up to 1048576", c.Frames)
	case !isPow2(c.FrameSize) || c.FrameSize < 2048 || c.FrameSize > os.Getpagesize():
		return c, fmt.Errorf("xsk: frame size %d: want a power of two from 2048 to the page size (%d)", c.FrameSize, os.Getpagesize())
	case !isPow2(c.RingSize) || c.RingSize > 1<<20:
		return c, fmt.Errorf("xsk: ring size %d: want a power of two up to 1048576", c.RingSize)
	case c.Mode > ModeZeroCopy:
		return c, fmt.Errorf("xsk: unknown mode %d", c.Mode)
	}
	return c, nil
}

// Frame is one received frame.
type Frame struct {
	// Data is the frame from its Ethernet header on: a view into the UMEM,
	// valid until the frame is released.
	Data []byte
	// Meta is the LAN program's decision, read from the verdict.MetaLen
	// bytes in front of the frame; HasMeta says whether they held one.
	Meta    verdict.Meta
	HasMeta bool

	addr uint64 // descriptor address: offset of Data in the UMEM
}

// Stats are the kernel's counters for the socket (XDP_STATISTICS) and what
// this package counted itself.
type Stats struct {
	// RxDropped: frames the kernel could not put in the UMEM: no chunk in
	// the fill ring, or the frame is longer than a chunk.
	RxDropped uint64
	// RxInvalidDescs, TxInvalidDescs: bad descriptors found in the rx (by
	// the kernel) or tx rings.
	RxInvalidDescs uint64
	TxInvalidDescs uint64
	// RxRingFull: frames dropped because the rx ring was full (Go does not
	// Receive fast enough).
	RxRingFull uint64
	// RxFillRingEmptyDescs: times the kernel found the fill ring empty (Go
	// holds every chunk: Release more, or sooner).
	RxFillRingEmptyDescs uint64
	TxRingEmptyDescs     uint64
	// BadDescs: rx descriptors this package skipped because they pointed
	// outside the UMEM (never seen; a kernel bug if it happens).
	BadDescs uint64
}

// kernelStats is struct xdp_statistics.
type kernelStats struct {
	RxDropped, RxInvalidDescs, TxInvalidDescs, RxRingFull, RxFillRingEmptyDescs, TxRingEmptyDescs uint64
}

// ErrClosed is returned by the methods of a closed Socket.
var ErrClosed = errors.New("xsk: socket closed")

// Socket is an AF_XDP socket receiving the frames of one RX queue. It is
// owned by one goroutine; see the package documentation.
type Socket struct {
	fd         int
	ifindex    int
	queue      int
	mode       Mode
	needWakeup bool

	umem       []byte
	frameShift uint // log2(FrameSize)
	fill       addrRing
	comp       ring
	rx         descRing

	held     []uint64 // bit per chunk: Go owns it (received, not released)
	badDescs atomic.Uint64

	xskmap *ebpf.Map // set by Register
	closed bool
}

// Open creates an AF_XDP socket on cfg.Queue of cfg.Ifindex with its own
// UMEM, maps its rings, puts every chunk in the fill ring and binds it.
// Frames reach it once it is registered in the LAN program's XSKMAP
// (Register). The interface is looked up in the network namespace of the
// calling thread. A queue still held by a socket closed a moment ago is
// waited for (up to 2 s); one held by a live socket fails with EBUSY.
func Open(cfg Config) (*Socket, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("xsk: socket(AF_XDP): %w", err)
	}
	s := &Socket{
		fd:         fd,
		ifindex:    cfg.Ifindex,
		queue:      cfg.Queue,
		needWakeup: cfg.NeedWakeup,
		frameShift: uint(bits.TrailingZeros(uint(cfg.FrameSize))),
		held:       make([]uint64, (cfg.Frames+63)/64),
	}
	if err := s.setup(cfg); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

func (s *Socket) setup(cfg Config) error {
	size := cfg.Frames * cfg.FrameSize
	umem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("xsk: mmap of a %d-byte UMEM: %w", size, err)
	}
	s.umem = umem
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&umem[0]))),
		Len:      uint64(size),
		Size:     uint32(cfg.FrameSize),
		Headroom: 0, // the metadata lives in the kernel's XDP_PACKET_HEADROOM
	}
	if err := setsockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fmt.Errorf("xsk: XDP_UMEM_REG (%d frames of %d bytes): %w", cfg.Frames, cfg.FrameSize, err)
	}
	for _, o := range []struct {
		opt, n int
	}{{unix.XDP_UMEM_FILL_RING, cfg.Frames}, {unix.XDP_UMEM_COMPLETION_RING, completionRingSize}, {unix.XDP_RX_RING, cfg.RingSize}} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, o.opt, o.n); err != nil {
			return fmt.Errorf("xsk: ring size option %d = %d: %w", o.opt, o.n, err)
		}
	}
	var off unix.XDPMmapOffsets
	optlen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return fmt.Errorf("xsk: XDP_MMAP_OFFSETS: %w", e)
	}
	if optlen != uint32(unsafe.Sizeof(off)) {
		return fmt.Errorf("xsk: XDP_MMAP_OFFSETS returned %d bytes, want %d (a kernel before 5.4 has no ring flags)", optlen, unsafe.Sizeof(off))
	}
	fr, err := mapRing(s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, uint32(cfg.Frames), 8)
	if err != nil {
		return fmt.Errorf("xsk: mapping the fill ring: %w", err)
	}
	s.fill = newAddrRing(fr)
	if s.comp, err = mapRing(s.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, completionRingSize, 8); err != nil {
		return fmt.Errorf("xsk: mapping the completion ring: %w", err)
	}
	rx, err := mapRing(s.fd, unix.XDP_PGOFF_RX_RING, off.Rx, uint32(cfg.RingSize), unsafe.Sizeof(unix.XDPDesc{}))
	if err != nil {
		return fmt.Errorf("xsk: mapping the rx ring: %w", err)
	}
	s.rx = newDescRing(rx)

	// Every chunk to the kernel before bind: the fill ring holds them all.
	for i := 0; i < cfg.Frames; i++ {
		s.fill.addrs[(s.fill.prod+uint32(i))&s.fill.mask] = uint64(i) << s.frameShift
	}
	s.fill.prod += uint32(cfg.Frames)
	atomic.StoreUint32(s.fill.producer, s.fill.prod)

	var flags uint16
	switch cfg.Mode {
	case ModeCopy:
		flags |= unix.XDP_COPY
	case ModeZeroCopy:
		flags |= unix.XDP_ZEROCOPY
	}
	if cfg.NeedWakeup {
		flags |= unix.XDP_USE_NEED_WAKEUP
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(cfg.Ifindex), QueueID: uint32(cfg.Queue)}
	if err := bindRetry(s.fd, sa); err != nil {
		hint := ""
		switch {
		case errors.Is(err, unix.EINVAL):
			hint = " (does the interface have that many RX queues? see QueueCount)"
		case errors.Is(err, unix.EOPNOTSUPP) && cfg.Mode == ModeZeroCopy:
			hint = " (the driver has no zero-copy AF_XDP: use copy or auto mode)"
		case errors.Is(err, unix.EBUSY):
			hint = fmt.Sprintf(" (another AF_XDP socket has held that queue for over %v)", busyWait)
		}
		return fmt.Errorf("xsk: bind to ifindex %d queue %d (%s): %w%s", cfg.Ifindex, cfg.Queue, cfg.Mode, err, hint)
	}
	var opts uint32
	optlen = 4
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_OPTIONS,
		uintptr(unsafe.Pointer(&opts)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return fmt.Errorf("xsk: XDP_OPTIONS: %w", e)
	}
	s.mode = ModeCopy
	if opts&unix.XDP_OPTIONS_ZEROCOPY != 0 {
		s.mode = ModeZeroCopy
	}
	return nil
}

// busyWait bounds how long Open retries a bind that finds the queue taken.
// Closing a socket frees its queue only when a kernel work item runs after
// close returns (xsk_destruct -> xp_put_pool -> xp_release_deferred), so a
// socket re-opened on the queue at once (a restart, a reconfiguration) can
// see EBUSY for a moment. A failed bind leaves the socket's rings in place,
// so binding again is safe.
const busyWait = 2 * time.Second

func bindRetry(fd int, sa *unix.SockaddrXDP) error {
	start, pause := time.Now(), time.Millisecond
	for {
		err := unix.Bind(fd, sa)
		if !errors.Is(err, unix.EBUSY) || time.Since(start) > busyWait {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

func setsockopt(fd, opt int, val unsafe.Pointer, size uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(val), size, 0); e != 0 {
		return e
	}
	return nil
}

// FD returns the socket's file descriptor.
func (s *Socket) FD() int { return s.fd }

// Ifindex and Queue say where the socket is bound.
func (s *Socket) Ifindex() int { return s.ifindex }
func (s *Socket) Queue() int   { return s.queue }

// Mode is the mode the kernel bound the socket in: ModeCopy or ModeZeroCopy.
func (s *Socket) Mode() Mode { return s.mode }

// Register puts the socket in the XSKMAP at its queue, so the LAN program
// redirects the queue's tunnel frames to it. It replaces whatever socket
// was registered there.
func (s *Socket) Register(xskmap *ebpf.Map) error {
	if s.closed {
		return ErrClosed
	}
	if xskmap.Type() != ebpf.XSKMap {
		return fmt.Errorf("xsk: register in %s: not an XSKMAP", xskmap)
	}
	if uint32(s.queue) >= xskmap.MaxEntries() {
		return fmt.Errorf("xsk: queue %d is beyond the %d entries of the XSKMAP", s.queue, xskmap.MaxEntries())
	}
	if err := xskmap.Put(uint32(s.queue), uint32(s.fd)); err != nil {
		return fmt.Errorf("xsk: registering queue %d: %w", s.queue, err)
	}
	s.xskmap = xskmap
	return nil
}

// Unregister removes the socket's queue from the XSKMAP it was registered
// in; the queue's tunnel frames then pass to the kernel (no_xsk). Whatever
// is at that key is removed, so a caller that registered another socket on
// the queue since must not call it. Close does not need it: the kernel
// removes a socket from every XSKMAP when it is closed, and only that socket.
func (s *Socket) Unregister() error {
	if s.xskmap == nil {
		return nil
	}
	err := s.xskmap.Delete(uint32(s.queue))
	s.xskmap = nil
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("xsk: unregistering queue %d: %w", s.queue, err)
	}
	return nil
}

// Receive waits up to timeout for frames and reads at most len(batch) of
// them into batch, returning how many. It returns at once when frames are
// ready; timeout 0 never waits and a negative timeout waits until a frame
// arrives. At the end of the timeout it returns 0 and no error, unless the
// socket can no longer receive (the interface is down, ENETDOWN, or gone,
// ENXIO). The frames are the caller's until it releases them; Receive
// overwrites batch, so release what it held before reusing it.
func (s *Socket) Receive(batch []Frame, timeout time.Duration) (int, error) {
	if s.closed {
		return 0, ErrClosed
	}
	if len(batch) == 0 {
		return 0, nil
	}
	if n := s.take(batch); n > 0 || timeout == 0 {
		return n, nil
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	for {
		ms := -1
		if timeout > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return 0, s.check()
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		if _, err := unix.Poll(pfd, ms); err != nil && !errors.Is(err, unix.EINTR) {
			return 0, fmt.Errorf("xsk: poll: %w", err)
		}
		if n := s.take(batch); n > 0 {
			return n, nil
		}
	}
}

// check asks the kernel whether the socket still receives (xsk_recvmsg
// fails with ENXIO once the device is gone and ENETDOWN while it is down);
// in zero-copy mode it also wakes the driver.
func (s *Socket) check() error {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
		return nil
	}
	return fmt.Errorf("xsk: ifindex %d queue %d: %w", s.ifindex, s.queue, e)
}

// take consumes up to len(batch) ready descriptors.
func (s *Socket) take(batch []Frame) int {
	ready := s.rx.ready()
	if ready == 0 {
		return 0
	}
	n := min(int(ready), len(batch))
	umemLen := uint64(len(s.umem))
	chunkMask := uint64(1)<<s.frameShift - 1
	got := 0
	for i := 0; i < n; i++ {
		d := s.rx.descs[(s.rx.cons+uint32(i))&s.rx.mask]
		end := d.Addr + uint64(d.Len)
		if end > umemLen || end < d.Addr || (d.Addr&chunkMask)+uint64(d.Len) > chunkMask+1 {
			s.badDescs.Add(1)
			continue
		}
		f := &batch[got]
		got++
		f.addr = d.Addr
		f.Data = s.umem[d.Addr:end:end]
		f.Meta, f.HasMeta = verdict.Meta{}, false
		if d.Addr&chunkMask >= verdict.MetaLen {
			mb := s.umem[d.Addr-verdict.MetaLen : d.Addr]
			if m, err := verdict.ParseMeta(mb); err == nil {
				f.Meta, f.HasMeta = m, true
				clear(mb[:4]) // the magic: never report it again for a later frame
			}
		}
		c := d.Addr >> s.frameShift
		s.held[c/64] |= 1 << (c % 64)
	}
	// Release order: the descriptors are read before the kernel may reuse
	// their slots.
	s.rx.cons += uint32(n)
	atomic.StoreUint32(s.rx.consumer, s.rx.cons)
	return got
}

// Release gives the frames' chunks back to the kernel, all in one update of
// the fill ring, and clears the frames' Data. Frames already released (or
// never received) are skipped.
func (s *Socket) Release(frames []Frame) {
	if s.closed {
		return
	}
	n := uint32(0)
	for i := range frames {
		f := &frames[i]
		if f.Data == nil {
			continue
		}
		f.Data = nil
		c := f.addr >> s.frameShift
		w, bit := c/64, uint64(1)<<(c%64)
		if w >= uint64(len(s.held)) || s.held[w]&bit == 0 {
			continue // not ours to give: released already
		}
		s.held[w] &^= bit
		s.fill.addrs[(s.fill.prod+n)&s.fill.mask] = c << s.frameShift
		n++
	}
	if n == 0 {
		return
	}
	// The fill ring has room for every chunk, and each chunk is in it at
	// most once: this never overwrites an entry the kernel has not read.
	s.fill.prod += n
	atomic.StoreUint32(s.fill.producer, s.fill.prod)
	if s.needWakeup && s.fill.needWakeup() {
		_ = s.check()
	}
}

// Held returns the number of frames received and not yet released.
func (s *Socket) Held() int {
	n := 0
	for _, w := range s.held {
		n += bits.OnesCount64(w)
	}
	return n
}

// Stats reads the socket's counters.
func (s *Socket) Stats() (Stats, error) {
	var k kernelStats
	optlen := uint32(unsafe.Sizeof(k))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&k)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return Stats{}, fmt.Errorf("xsk: XDP_STATISTICS: %w", e)
	}
	return Stats{
		RxDropped:            k.RxDropped,
		RxInvalidDescs:       k.RxInvalidDescs,
		TxInvalidDescs:       k.TxInvalidDescs,
		RxRingFull:           k.RxRingFull,
		RxFillRingEmptyDescs: k.RxFillRingEmptyDescs,
		TxRingEmptyDescs:     k.TxRingEmptyDescs,
		BadDescs:             s.badDescs.Load(),
	}, nil
}

// Close closes the socket, which also removes it from every XSKMAP it is in
// (the kernel does, and only where the entry is this socket: a socket that
// replaced it on the queue stays), and unmaps the rings and the UMEM. Frames
// not yet released must not be touched afterwards.
func (s *Socket) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.xskmap = nil
	return s.release()
}

func (s *Socket) release() error {
	var errs []error
	if s.fd >= 0 {
		errs = append(errs, unix.Close(s.fd))
		s.fd = -1
	}
	errs = append(errs, s.fill.unmap(), s.comp.unmap(), s.rx.unmap())
	s.fill.addrs, s.rx.descs = nil, nil
	if s.umem != nil {
		errs = append(errs, unix.Munmap(s.umem))
		s.umem = nil
	}
	return errors.Join(errs...)
}
