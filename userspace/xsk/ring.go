package xsk

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one mmapped ring shared with the kernel. producer, consumer and
// flags point into mem; they are only ever accessed with sync/atomic.
type ring struct {
	mem      []byte
	producer *uint32
	consumer *uint32
	flags    *uint32
	entries  unsafe.Pointer // first entry
	mask     uint32
	size     uint32
}

// mapRing mmaps a ring of size entries of entrySize bytes at the page offset
// pgoff of the socket.
func mapRing(fd int, pgoff int64, off unix.XDPRingOffset, size uint32, entrySize uintptr) (ring, error) {
	length := int(off.Desc) + int(size)*int(entrySize)
	mem, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ring{}, err
	}
	for _, o := range []uint64{off.Producer, off.Consumer, off.Flags} {
		if o+4 > uint64(len(mem)) || o%4 != 0 {
			_ = unix.Munmap(mem)
			return ring{}, fmt.Errorf("ring offset %d outside its %d-byte mapping", o, len(mem))
		}
	}
	return ring{
		mem:      mem,
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		entries:  unsafe.Pointer(&mem[off.Desc]),
		mask:     size - 1,
		size:     size,
	}, nil
}

func (r *ring) unmap() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	*r = ring{}
	return err
}

// needWakeup reports whether the kernel asks to be kicked (XDP_RING_NEED_WAKEUP).
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// addrRing is a ring of UMEM addresses that Go produces (the fill ring).
type addrRing struct {
	ring
	addrs []uint64
	prod  uint32 // our producer index; the kernel never writes it
}

func newAddrRing(r ring) addrRing {
	return addrRing{ring: r, addrs: unsafe.Slice((*uint64)(r.entries), r.size), prod: atomic.LoadUint32(r.producer)}
}

// free is the number of entries Go may produce now.
func (r *addrRing) free() uint32 {
	return r.size - (r.prod - atomic.LoadUint32(r.consumer))
}

// descRing is a ring of descriptors that the kernel produces (the rx ring).
type descRing struct {
	ring
	descs []unix.XDPDesc
	cons  uint32 // our consumer index; the kernel never writes it
}

func newDescRing(r ring) descRing {
	return descRing{ring: r, descs: unsafe.Slice((*unix.XDPDesc)(r.entries), r.size), cons: atomic.LoadUint32(r.consumer)}
}

// ready is the number of descriptors the kernel has produced and Go not
// yet consumed. Loading the producer index orders the reads of those
// descriptors after it.
func (r *descRing) ready() uint32 {
	return atomic.LoadUint32(r.producer) - r.cons
}
