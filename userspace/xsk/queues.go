package xsk

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolChannels is struct ethtool_channels.
type ethtoolChannels struct {
	Cmd                                         uint32
	MaxRx, MaxTx, MaxOther, MaxCombined         uint32
	RxCount, TxCount, OtherCount, CombinedCount uint32
}

// ifreqData is struct ifreq with ifr_data set.
type ifreqData struct {
	Name [unix.IFNAMSIZ]byte
	Data unsafe.Pointer
	_    [16]byte
}

// QueueCount returns the number of RX queues of the interface that AF_XDP
// sockets can bind to (ETHTOOL_GCHANNELS: combined plus RX-only channels),
// in the network namespace of the calling thread. It reads the kernel
// rather than /sys/class/net, which shows the namespace sysfs was mounted
// in, not the caller's.
func QueueCount(ifname string) (int, error) {
	if len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("xsk: interface name %q too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("xsk: socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	ch := &ethtoolChannels{Cmd: unix.ETHTOOL_GCHANNELS}
	var ifr ifreqData
	copy(ifr.Name[:], ifname)
	ifr.Data = unsafe.Pointer(ch)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(ch)
	if e != 0 {
		return 0, fmt.Errorf("xsk: ETHTOOL_GCHANNELS on %s: %w", ifname, e)
	}
	n := int(ch.CombinedCount) + int(ch.RxCount)
	if n == 0 {
		n = 1 // a driver that reports no channels still has its one queue
	}
	return n, nil
}
