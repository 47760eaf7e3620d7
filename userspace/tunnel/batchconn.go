package tunnel

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wireMsg is one message of a batched read or write. On a read, buf is
// what arrived and seg the size of the datagrams the kernel coalesced into
// it (UDP GRO; 0: one datagram). On a write, buf is sent as one datagram,
// or, with seg > 0, as datagrams of seg bytes (the last may be shorter) in
// one go (UDP GSO).
type wireMsg struct {
	buf  []byte
	addr netip.AddrPort
	seg  int
}

// batchConn is a tunnel socket read and written in batches.
type batchConn interface {
	// read fills msgs (each buf sliced to its capacity first) and returns
	// how many it filled, at least one; it blocks until then.
	read(msgs []wireMsg) (int, error)
	// write sends msgs. It may be called from several goroutines.
	write(msgs []wireMsg) error
	close() error
	localAddr() netip.AddrPort
	// offload tells whether writes may use seg (UDP GSO) and whether
	// reads may return coalesced datagrams (UDP GRO).
	offload() (gso, gro bool)
}

// Batch sizes.
const (
	maxSegments  = 64    // datagrams in one GSO write (the kernel allows 64 or more)
	maxGSOBytes  = 65000 // payload bytes in one GSO write (under 65,507)
	readBatch    = 64    // messages per recvmmsg without GRO
	readBatchGRO = 16    // messages per recvmmsg with GRO (each up to 64 KiB)
	writeBatch   = 64    // messages per sendmmsg
	maxDatagram  = 65535
	smallBuffer  = 2048 // a received wireMsg without GRO (link MTU 1500 + slack)
)

// newBatchConn wraps a socket: a *net.UDPConn gets recvmmsg/sendmmsg and
// UDP GSO/GRO when the kernel has them; anything else (tests' in-memory
// sockets) is read and written one datagram at a time.
func newBatchConn(pc net.PacketConn) batchConn {
	if uc, ok := pc.(*net.UDPConn); ok {
		if c, err := newUDPConn(uc); err == nil {
			return c
		}
	}
	return &genericConn{pc: pc}
}

// newReadBuffers allocates what read needs for one reader.
func newReadBuffers(c batchConn) []wireMsg {
	n, size := readBatch, smallBuffer
	if _, gro := c.offload(); gro {
		n, size = readBatchGRO, maxDatagram
	}
	msgs := make([]wireMsg, n)
	for i := range msgs {
		msgs[i].buf = make([]byte, size)
	}
	return msgs
}

// udpConn is a UDP socket read with recvmmsg and written with sendmmsg,
// through the runtime's poller (RawConn), without allocating.
type udpConn struct {
	uc    *net.UDPConn
	rc    syscall.RawConn
	local netip.AddrPort
	gso   atomic.Bool
	gro   bool

	// Reader state: one reader at a time.
	rhdrs  []unix.Mmsghdr
	riovs  []unix.Iovec
	rnames []unix.RawSockaddrInet6
	rctrl  []byte // readBatch * rctrlLen

	wmu    sync.Mutex // writers share the structures below
	whdrs  []unix.Mmsghdr
	wiovs  []unix.Iovec
	wnames []unix.RawSockaddrInet6
	wctrl  []byte // writeBatch * wctrlLen
}

var (
	rctrlLen = unix.CmsgSpace(4) // UDP_GRO: an int
	wctrlLen = unix.CmsgSpace(2) // UDP_SEGMENT: a u16
)

func newUDPConn(uc *net.UDPConn) (*udpConn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	ap := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	c := &udpConn{
		uc: uc, rc: rc, local: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()),
		rhdrs: make([]unix.Mmsghdr, readBatch), riovs: make([]unix.Iovec, readBatch),
		rnames: make([]unix.RawSockaddrInet6, readBatch), rctrl: make([]byte, readBatch*rctrlLen),
		whdrs: make([]unix.Mmsghdr, writeBatch), wiovs: make([]unix.Iovec, writeBatch),
		wnames: make([]unix.RawSockaddrInet6, writeBatch), wctrl: make([]byte, writeBatch*wctrlLen),
	}
	_ = rc.Control(func(fd uintptr) {
		// GSO: the option exists if the kernel can segment; sending with
		// it is tried and disabled on the first failure (write).
		if _, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
			c.gso.Store(true)
		}
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil {
			c.gro = true
		}
	})
	return c, nil
}

func (c *udpConn) localAddr() netip.AddrPort { return c.local }
func (c *udpConn) close() error              { return c.uc.Close() }
func (c *udpConn) offload() (bool, bool)     { return c.gso.Load(), c.gro }

func (c *udpConn) read(msgs []wireMsg) (int, error) {
	n := min(len(msgs), len(c.rhdrs))
	if n == 0 {
		return 0, nil
	}
	for i := 0; i < n; i++ {
		b := msgs[i].buf[:cap(msgs[i].buf)]
		msgs[i].buf = b
		c.riovs[i].Base = &b[0]
		c.riovs[i].SetLen(len(b))
		h := &c.rhdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&c.rnames[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &c.riovs[i]
		h.SetIovlen(1)
		h.Control = &c.rctrl[i*rctrlLen]
		h.SetControllen(rctrlLen)
		h.Flags = 0
		c.rhdrs[i].Len = 0
	}
	var got int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.rhdrs[0])), uintptr(n), 0, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		got, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	for i := 0; i < got; i++ {
		h := &c.rhdrs[i]
		msgs[i].buf = msgs[i].buf[:h.Len]
		msgs[i].addr = sockaddrToAddrPort(&c.rnames[i])
		msgs[i].seg = 0
		if h.Hdr.Controllen > 0 {
			msgs[i].seg = groSize(c.rctrl[i*rctrlLen : i*rctrlLen+int(h.Hdr.Controllen)])
		}
	}
	return got, nil
}

// groSize finds the UDP_GRO segment size in a control message buffer.
func groSize(ctrl []byte) int {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(ctrl) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && int(h.Len) >= unix.CmsgLen(4) {
			return int(*(*int32)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)])))
		}
		ctrl = ctrl[min(unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0)), len(ctrl)):]
	}
	return 0
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := uint16(sa4.Port>>8) | uint16(sa4.Port<<8)
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		port := uint16(sa.Port>>8) | uint16(sa.Port<<8)
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// putSockaddr writes addr as the socket's family wants it and returns the
// length.
func putSockaddr(sa *unix.RawSockaddrInet6, addr netip.AddrPort, v4 bool) uint32 {
	port := addr.Port()
	if v4 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		sa4.Port = port<<8 | port>>8
		sa4.Addr = addr.Addr().Unmap().As4()
		sa4.Zero = [8]byte{}
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	sa.Port = port<<8 | port>>8
	sa.Flowinfo = 0
	sa.Addr = addr.Addr().As16()
	sa.Scope_id = 0
	return unix.SizeofSockaddrInet6
}

// errGSO tells that the kernel refused a GSO send: a device on the way
// cannot checksum for it (EIO) or the socket cannot (EINVAL/ENOPROTOOPT).
func errGSO(e syscall.Errno) bool {
	return e == unix.EIO || e == unix.EINVAL || e == unix.ENOPROTOOPT || e == unix.EOPNOTSUPP
}

func (c *udpConn) write(msgs []wireMsg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var first error
	note := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	v4 := c.local.Addr().Is4()
	n := 0 // headers filled, for msgs[base:base+n]
	base := 0
	for i := range msgs {
		m := &msgs[i]
		isGSO := m.seg > 0 && m.seg < len(m.buf)
		if isGSO && !c.gso.Load() {
			// No GSO (any more): send what is queued, then this one in
			// pieces.
			if err := c.sendmmsg(msgs[base:base+n], n, v4, note); err != nil {
				return err
			}
			n, base = 0, i+1
			if err := c.writeSplit(m, v4); errors.Is(err, net.ErrClosed) {
				return err
			} else {
				note(err)
			}
			continue
		}
		if n == 0 {
			base = i
		}
		c.wiovs[n].Base = unsafe.SliceData(m.buf)
		c.wiovs[n].SetLen(len(m.buf))
		h := &c.whdrs[n].Hdr
		h.Name = (*byte)(unsafe.Pointer(&c.wnames[n]))
		h.Namelen = putSockaddr(&c.wnames[n], m.addr, v4)
		h.Iov = &c.wiovs[n]
		h.SetIovlen(1)
		h.Control = nil
		h.SetControllen(0)
		h.Flags = 0
		if isGSO {
			ctrl := c.wctrl[n*wctrlLen : (n+1)*wctrlLen]
			ch := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
			ch.Level, ch.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
			ch.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)])) = uint16(m.seg)
			h.Control = &ctrl[0]
			h.SetControllen(len(ctrl))
		}
		n++
		if n == len(c.whdrs) {
			if err := c.sendmmsg(msgs[base:base+n], n, v4, note); err != nil {
				return err
			}
			n = 0
		}
	}
	if n > 0 {
		if err := c.sendmmsg(msgs[base:base+n], n, v4, note); err != nil {
			return err
		}
	}
	return first
}

// sendmmsg sends the n prepared headers (for msgs); a message the kernel
// refuses is skipped (noted), a GSO message refused for lack of GSO is sent
// in pieces and GSO is turned off. Only a closed socket is returned.
func (c *udpConn) sendmmsg(msgs []wireMsg, n int, v4 bool, note func(error)) error {
	sent := 0
	for sent < n {
		var r int
		var errno syscall.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			rr, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.whdrs[sent])), uintptr(n-sent), 0, 0, 0)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false
			}
			r, errno = int(rr), e
			return true
		})
		if err != nil {
			return err // closed
		}
		if errno == 0 {
			sent += r
			continue
		}
		m := &msgs[sent]
		if m.seg > 0 && m.seg < len(m.buf) && errGSO(errno) {
			c.gso.Store(false)
			note(c.writeSplit(m, v4))
		} else {
			note(errno)
		}
		sent++
	}
	return nil
}

// writeSplit sends a GSO message as separate datagrams.
func (c *udpConn) writeSplit(m *wireMsg, v4 bool) error {
	var sa unix.RawSockaddrInet6
	l := putSockaddr(&sa, m.addr, v4)
	var first error
	for b := m.buf; len(b) > 0; {
		k := min(m.seg, len(b))
		seg := b[:k]
		b = b[k:]
		var errno syscall.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			_, _, e := unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&seg[0])), uintptr(len(seg)), 0, uintptr(unsafe.Pointer(&sa)), uintptr(l))
			if e == unix.EAGAIN || e == unix.EINTR {
				return false
			}
			errno = e
			return true
		})
		if err != nil {
			return err
		}
		if errno != 0 && first == nil {
			first = errno
		}
	}
	return first
}

// genericConn reads and writes any net.PacketConn one datagram at a time.
type genericConn struct {
	pc  net.PacketConn
	wmu sync.Mutex
}

func (c *genericConn) localAddr() netip.AddrPort {
	if a, ok := c.pc.LocalAddr().(*net.UDPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
func (c *genericConn) close() error          { return c.pc.Close() }
func (c *genericConn) offload() (bool, bool) { return false, false }

func (c *genericConn) read(msgs []wireMsg) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	b := msgs[0].buf[:cap(msgs[0].buf)]
	n, addr, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, err
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("tunnel: wireMsg from a non-UDP address")
	}
	ap := ua.AddrPort()
	msgs[0] = wireMsg{buf: b[:n], addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
	return 1, nil
}

func (c *genericConn) write(msgs []wireMsg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var first error
	for _, m := range msgs {
		to := net.UDPAddrFromAddrPort(m.addr)
		seg := m.seg
		if seg <= 0 {
			seg = len(m.buf)
		}
		for b := m.buf; len(b) > 0 || seg == 0; {
			k := min(seg, len(b))
			if _, err := c.pc.WriteTo(b[:k], to); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return err
				}
				if first == nil {
					first = err
				}
			}
			b = b[k:]
			if seg == 0 {
				break
			}
		}
	}
	return first
}
