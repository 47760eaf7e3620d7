// Package xsk is xwand's AF_XDP receive side: the LAN XDP program
// (bpf/xdp_lan.c) decides which tunnel path a frame takes, writes that
// decision in front of the frame as XDP metadata and redirects the frame to
// the AF_XDP socket registered for its RX queue in the xsks XSKMAP. A Socket
// from this package is that AF_XDP socket: it owns a UMEM, the rings shared
// with the kernel, and hands frames to Go in batches together with the
// decision, so Go never classifies a frame that came this way again.
//
// # One socket per RX queue
//
// An AF_XDP socket is bound to one (interface, RX queue) pair, and the
// kernel only delivers a redirected frame to a socket bound to the queue the
// frame arrived on (xsk_rcv_check): a frame redirected to a socket of another
// queue is dropped. The LAN program keys xsks by rx_queue_index, so xwand
// opens one Socket per RX queue of each LAN interface (QueueCount tells how
// many there are; a veth made by `ip link add` has one) and registers each
// at its queue (Register). A queue without a socket is harmless: the program
// passes its tunnel frames to the kernel with the metadata in front and
// counts them as no_xsk.
//
// # Copy and zero-copy
//
// In zero-copy mode the driver receives straight into UMEM chunks, so the
// XDP program runs on the chunk itself. In copy mode (every driver, and the
// only mode veth has) the program runs on the driver's own buffer and the
// kernel copies the frame into a UMEM chunk on redirect. ModeAuto binds
// without XDP_COPY or XDP_ZEROCOPY, which makes the kernel try zero-copy and
// fall back to copy; Socket.Mode reports what it chose (XDP_OPTIONS).
// ModeZeroCopy fails on a driver without zero-copy support instead of
// falling back.
//
// # Where the metadata is
//
// The UMEM is registered with headroom 0. The kernel then puts the frame at
// XDP_PACKET_HEADROOM (256) bytes into the chunk and reports that address in
// the RX descriptor. The metadata the program wrote (bpf_xdp_adjust_meta)
// sits in the 256 bytes in front of the frame: in zero-copy mode because the
// program wrote it there, in copy mode because the kernel copies from
// data_meta, not from data (xsk_copy_xdp_start in net/xdp/xsk.c), to
// "descriptor address - metadata length". So the verdict.MetaLen bytes
// right before Frame.Data are the decision; TestReceiveWithMetadata checks
// this on a real veth in copy mode (descriptor offset 256 in the chunk,
// every frame's metadata equal to what the rule set decides).
//
// A frame that arrives without metadata (not something the LAN program
// does) would find whatever an earlier frame left in the chunk's headroom,
// so Receive clears the magic word after reading it: stale metadata is never
// reported twice.
//
// # Rings
//
// Four single-producer/single-consumer rings are shared with the kernel,
// each mmapped from the socket at the offsets XDP_MMAP_OFFSETS reports: a
// producer index, a consumer index, a flags word and an array of entries.
// Indices are free-running uint32 counters (entry = index & (size-1)).
//
//	fill ring       Go produces chunk addresses the kernel may receive into.
//	                Its size is Config.Frames, so every chunk fits at once:
//	                Open puts all of them in, and Release never finds it full.
//	rx ring         the kernel produces descriptors {addr, len, options} of
//	                received frames (Config.RingSize entries); Receive
//	                consumes them.
//	completion ring required by the kernel for a UMEM; unused (no TX ring).
//
// The indices are read and written with sync/atomic: loading the other
// side's index before touching entries gives acquire order, storing our own
// index after touching them gives release order (Go's atomics are
// sequentially consistent, which is stronger than the kernel's
// smp_load_acquire/smp_store_release pairing needs). Entries are plain
// memory. A chunk is owned by exactly one side at a time: the kernel from the
// moment it is in the fill ring until Receive consumes its descriptor, Go
// from then until Release puts it back. Release ignores a frame it already
// took back, so releasing a copy of a Frame twice cannot hand one chunk to
// the kernel twice.
//
// With Config.NeedWakeup the socket is bound with XDP_USE_NEED_WAKEUP: a
// driver that stops polling the fill ring while it is empty sets
// XDP_RING_NEED_WAKEUP on it, and Release then kicks it with a
// recvfrom(MSG_DONTWAIT). poll(2), which Receive calls while the rx ring is
// empty, wakes the driver as well. In copy mode the kernel never sets the
// flag.
//
// # Who may call what
//
// A Socket is owned by one goroutine: Receive, Release, Register,
// Unregister and Close must not run concurrently with each other. FD, Mode,
// Queue, Ifindex and Stats only read the file descriptor and may be called
// from any goroutine while the socket is open. Frame.Data is a view into the
// UMEM: it is valid from Receive until the frame is released, and must not be
// used after Release or Close (the memory is reused by later frames, and
// unmapped by Close). Copy what must outlive the frame.
//
// Receive blocks the calling OS thread in poll(2) for at most its timeout;
// the Go runtime runs other goroutines on other threads meanwhile. A
// negative timeout waits until a frame arrives, which nothing can interrupt
// (Close must not run concurrently): loops that must stop use a finite
// timeout.
//
// # What the counters mean
//
// The program's stats_reasons counts a frame as redirect when it hands the
// frame to the socket. If the socket then has no free chunk (Go holds them
// all) or no room in the rx ring, the kernel drops the frame and counts it
// here (Stats.RxDropped, RxRingFull), not in no_xsk. no_xsk counts frames of
// a queue with no registered socket, which pass to the kernel instead.
//
// # Checksums
//
// Frames from a sender with checksum offload that never reached a NIC (a
// veth peer: the lab, containers on the gateway) carry only the
// pseudo-header sum in their TCP/UDP checksum (CHECKSUM_PARTIAL). XDP runs
// before anything completes it, and AF_XDP says nothing about it, so such a
// frame arrives here with a checksum that does not verify. Frames from a
// real NIC are complete.
//
// Memory: a socket pins Frames × FrameSize bytes of UMEM (16 MiB with the
// defaults) plus its rings; root (CAP_IPC_LOCK) is not limited by
// RLIMIT_MEMLOCK. A frame longer than FrameSize - 256 bytes does not fit a
// chunk and is dropped by the kernel (rx_dropped): the LAN MTU must leave
// that room.
package xsk
