package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/xwan-dev/xwan/userspace/testenv"
	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread switched into a named namespace;
// sockets fn creates stay in that namespace.
func inNetns(name string, fn func() error) error { return (&testenv.Netns{Name: name}).Do(fn) }

// packetSock is an AF_PACKET socket bound to one interface, non-blocking
// and served by the runtime poller, so that closing it wakes a goroutine
// blocked in recv or send.
type packetSock struct {
	ifname string
	f      *os.File
	rc     syscall.RawConn
}

// impairSockBuf is the receive and send buffer of a bridge socket.
const impairSockBuf = 8 << 20

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacketSock opens the socket in the calling thread's namespace.
func openPacketSock(ifname string) (*packetSock, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	// Protocol 0: nothing arrives until bind names the interface and
	// ETH_P_ALL, so no frame of another interface slips in.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	for _, o := range []struct {
		level, opt, v int
		name          string
	}{
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, impairSockBuf, "SO_RCVBUFFORCE"},
		{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, impairSockBuf, "SO_SNDBUFFORCE"},
		// Our own writes would come back as PACKET_OUTGOING.
		{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING"},
		// VLAN tags stripped by the kernel, and unfinished checksums.
		{unix.SOL_PACKET, unix.PACKET_AUXDATA, 1, "PACKET_AUXDATA"},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("%s on %s: %w", o.name, ifname, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind to %s: %w", ifname, err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &packetSock{ifname: ifname, f: f, rc: rc}, nil
}

func (p *packetSock) close() { _ = p.f.Close() }

var errTruncated = errors.New("frame larger than the buffer")

// recv reads one frame into buf (which must hold vlanTagLen+maxFrame
// bytes), with its VLAN tag restored, and reports whether its checksum
// was left for the receiver to finish.
func (p *packetSock) recv(buf, oob []byte) (frame []byte, partial bool, err error) {
	var n, oobn, flags int
	var from unix.Sockaddr
	var rerr error
	err = p.rc.Read(func(fd uintptr) bool {
		n, oobn, flags, from, rerr = unix.Recvmsg(int(fd), buf[vlanTagLen:], oob, 0)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, false, err
	}
	if flags&unix.MSG_TRUNC != 0 {
		return nil, false, errTruncated
	}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
		return nil, false, errors.New("outgoing frame") // PACKET_IGNORE_OUTGOING makes this impossible
	}
	frame = buf[vlanTagLen : vlanTagLen+n]
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return frame, false, nil
	}
	for _, c := range cmsgs {
		if c.Header.Level != unix.SOL_PACKET || c.Header.Type != unix.PACKET_AUXDATA || len(c.Data) < 20 {
			continue
		}
		// struct tpacket_auxdata: status, len, snaplen (u32), mac, net,
		// vlan_tci, vlan_tpid (u16), native endian.
		status := binary.NativeEndian.Uint32(c.Data[0:])
		tci := binary.NativeEndian.Uint16(c.Data[16:])
		tpid := binary.NativeEndian.Uint16(c.Data[18:])
		partial = status&unix.TP_STATUS_CSUMNOTREADY != 0
		if status&unix.TP_STATUS_VLAN_VALID != 0 && n >= 14 {
			if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
				tpid = unix.ETH_P_8021Q
			}
			frame = insertVLAN(buf, n, tpid, tci)
		}
	}
	return frame, partial, nil
}

// send writes one frame out of the bound interface, waiting while the
// socket's buffer is full.
func (p *packetSock) send(frame []byte) error {
	var werr error
	err := p.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), frame)
		return werr != unix.EAGAIN && werr != unix.EINTR
	})
	if err != nil {
		return err
	}
	return werr
}
