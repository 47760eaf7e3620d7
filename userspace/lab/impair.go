package lab

// Impairment bridges: with Options.Impairable, every WAN link
//
//	gw:wanK ── veth ── [gw | bridge | rt] ── veth ── router:<site>-wanK
//
// runs through a namespace of its own, <prefix>-<site>-<link>-i, holding
// the two inner veth ends ("gw" and "rt", no addresses, IPv6 off, so the
// namespace never speaks on the wire) and an AF_PACKET socket on each,
// owned by this process. Each direction is a reader goroutine (receive,
// blackhole, loss, release time = now + delay ± jitter) and a releaser
// goroutine (a FIFO of frames ordered by release time and one timer for
// its head). Probes see real lost and late frames on the wire.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Direction is one or both directions of a bridged WAN link.
type Direction int

const (
	Both       Direction = iota // both directions
	ToRouter                    // frames from the gateway towards the router (the gateway's upload)
	FromRouter                  // frames from the router towards the gateway (the gateway's download)
)

func (d Direction) String() string {
	switch d {
	case Both:
		return "both"
	case ToRouter:
		return "to-router"
	case FromRouter:
		return "from-router"
	}
	return fmt.Sprintf("direction(%d)", int(d))
}

// ParseDirection reads "to-router", "from-router" or "both".
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "both", "":
		return Both, nil
	case "to-router":
		return ToRouter, nil
	case "from-router":
		return FromRouter, nil
	}
	return 0, fmt.Errorf("direction %q: want to-router, from-router or both", s)
}

// Impairment is what one direction of a bridge does to the frames it
// receives. The zero value forwards everything at once.
type Impairment struct {
	Loss      float64       `json:"loss"`   // probability, 0..1, drawn per frame
	Delay     time.Duration `json:"delay"`  // added to every frame
	Jitter    time.Duration `json:"jitter"` // uniform ±Jitter around Delay; at most Delay
	Blackhole bool          `json:"blackhole,omitempty"`
}

// MaxImpairDelay bounds Delay+Jitter.
const MaxImpairDelay = 10 * time.Second

// impairQueueLimit bounds the frames waiting in one direction; more are
// dropped and counted (DroppedQueue).
const impairQueueLimit = 65536

// Validate reports an impairment that cannot be applied.
func (i Impairment) Validate() error {
	switch {
	case i.Loss < 0 || i.Loss > 1 || i.Loss != i.Loss:
		return fmt.Errorf("loss %v: want a probability between 0 and 1", i.Loss)
	case i.Delay < 0 || i.Jitter < 0:
		return errors.New("delay and jitter must not be negative")
	case i.Jitter > i.Delay:
		return fmt.Errorf("jitter %s larger than delay %s: jitter is uniform ±jitter around the delay", i.Jitter, i.Delay)
	case i.Delay+i.Jitter > MaxImpairDelay:
		return fmt.Errorf("delay+jitter %s: at most %s", i.Delay+i.Jitter, MaxImpairDelay)
	}
	return nil
}

func (i Impairment) String() string {
	if i.Blackhole {
		return "blackhole"
	}
	var f []string
	if i.Loss > 0 {
		f = append(f, fmt.Sprintf("loss %g%%", i.Loss*100))
	}
	if i.Delay > 0 {
		f = append(f, "delay "+i.Delay.String())
	}
	if i.Jitter > 0 {
		f = append(f, "jitter ±"+i.Jitter.String())
	}
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, ", ")
}

// Counters count the frames of one bridge direction since the lab came up.
type Counters struct {
	Received         uint64 `json:"received"`          // frames read from the ingress end
	Forwarded        uint64 `json:"forwarded"`         // frames written to the egress end
	Bytes            uint64 `json:"bytes"`             // bytes of the forwarded frames
	DroppedLoss      uint64 `json:"dropped_loss"`      // dropped by the loss draw
	DroppedBlackhole uint64 `json:"dropped_blackhole"` // dropped by a blackhole
	DroppedQueue     uint64 `json:"dropped_queue"`     // dropped because impairQueueLimit frames were waiting
	Delayed          uint64 `json:"delayed"`           // held in the queue (release time after arrival)
	Errors           uint64 `json:"errors"`            // receive errors, truncated frames, failed writes
	ChecksumPartial  uint64 `json:"checksum_partial"`  // frames whose L4 checksum the sender left unfinished (offload not off: should stay 0)
	Queued           int    `json:"queued"`            // frames waiting now
}

// LinkCounters are the counters of one bridged link.
type LinkCounters struct {
	ToRouter   Counters `json:"to_router"`
	FromRouter Counters `json:"from_router"`
}

// DirStatus is one direction of a bridge: its impairment and counters.
type DirStatus struct {
	Impairment Impairment `json:"impairment"`
	Counters   Counters   `json:"counters"`
}

// LinkStatus describes one bridged link.
type LinkStatus struct {
	Site       string    `json:"site"`
	Link       string    `json:"link"`
	Namespace  string    `json:"namespace"`
	ToRouter   DirStatus `json:"to_router"`
	FromRouter DirStatus `json:"from_router"`
}

// bridgeSet holds a lab's bridges (the Lab field `bridges`).
type bridgeSet struct {
	mu     sync.Mutex
	m      map[string]*bridge // "site/link"
	closed bool
}

// BridgeNamespace names the namespace of a link's bridge.
func BridgeNamespace(prefix, site, link string) string {
	return fmt.Sprintf("%s-%s-%s-i", prefix, site, link)
}

// addBridgedLink is Impairable's version of the WAN link veth: the
// gateway's end, a bridge namespace, the router's end.
func (l *Lab) addBridgedLink(s *Site, link Link, routerIf string) error {
	bns := BridgeNamespace(l.Opts.Prefix, s.Name, link.Name)
	if _, err := sh("ip", "netns", "add", bns); err != nil {
		return err
	}
	// No IPv6 on the inner ends: no link-local address, no router
	// solicitations or MLD reports of the bridge's own on the wire.
	if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
		for _, c := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
			if _, err := in(bns, "sysctl", "-qw", c); err != nil {
				return err
			}
		}
	}
	if err := veth(s.GW, link.Name, link.Addr.String()+"/24", bns, "gw", ""); err != nil {
		return err
	}
	if err := veth(bns, "rt", "", l.Router, routerIf, link.Gateway.String()+"/24"); err != nil {
		return err
	}
	// AF_PACKET reads what the sending veth produced. Without this, TCP
	// sends 64 KiB TSO/GSO super-frames (one "packet" to lose or delay,
	// and too large to write back) and leaves checksums unfinished
	// (CHECKSUM_PARTIAL; the copy written on the other side would arrive
	// with a wrong one). So the outer ends finish every frame in software,
	// as a NIC does before the wire, and the inner ends never merge (GRO).
	for _, c := range [][]string{
		{s.GW, "ethtool", "-K", link.Name, "tx", "off", "tso", "off", "gso", "off"},
		{l.Router, "ethtool", "-K", routerIf, "tx", "off", "tso", "off", "gso", "off"},
		{bns, "ethtool", "-K", "gw", "gro", "off"},
		{bns, "ethtool", "-K", "rt", "gro", "off"},
		{bns, "ip", "link", "set", "gw", "promisc", "on"},
		{bns, "ip", "link", "set", "rt", "promisc", "on"},
	} {
		if _, err := in(c[0], c[1:]...); err != nil {
			return err
		}
	}
	var gw, rt *packetSock
	err := inNetns(bns, func() error {
		var err error
		if gw, err = openPacketSock("gw"); err != nil {
			return err
		}
		rt, err = openPacketSock("rt")
		return err
	})
	if err != nil {
		if gw != nil {
			gw.close()
		}
		return fmt.Errorf("bridge %s: %w", bns, err)
	}
	b := newBridge(s.Name, link.Name, bns, gw, rt)
	l.bridges.mu.Lock()
	defer l.bridges.mu.Unlock()
	if l.bridges.closed {
		b.close()
		return errors.New("lab closed")
	}
	if l.bridges.m == nil {
		l.bridges.m = map[string]*bridge{}
	}
	l.bridges.m[s.Name+"/"+link.Name] = b
	b.start()
	return nil
}

// stopBridges stops every bridge: goroutines end, sockets close (the
// namespaces, which the sockets hold, go with Down). Safe to call twice
// and concurrently.
func (l *Lab) stopBridges() {
	l.bridges.mu.Lock()
	bs := l.bridges.m
	l.bridges.m, l.bridges.closed = nil, true
	l.bridges.mu.Unlock()
	for _, b := range bs {
		b.close()
	}
}

func (l *Lab) bridge(site, link string) (*bridge, error) {
	l.bridges.mu.Lock()
	defer l.bridges.mu.Unlock()
	if !l.Opts.Impairable {
		return nil, fmt.Errorf("lab %q has no impairment bridges (Options.Impairable is false)", l.Opts.Prefix)
	}
	if l.bridges.closed {
		return nil, fmt.Errorf("lab %q is closed", l.Opts.Prefix)
	}
	b := l.bridges.m[site+"/"+link]
	if b == nil {
		have := slices.Sorted(maps.Keys(l.bridges.m))
		return nil, fmt.Errorf("no bridged link %s/%s (have %s)", site, link, strings.Join(have, ", "))
	}
	return b, nil
}

// Impair sets the impairment of one or both directions of a site's WAN
// link, replacing what was set there. It applies to the frames received
// from now on; frames already waiting keep their release time.
func (l *Lab) Impair(site, link string, dir Direction, imp Impairment) error {
	if err := imp.Validate(); err != nil {
		return err
	}
	if dir != Both && dir != ToRouter && dir != FromRouter {
		return fmt.Errorf("bad direction %d", int(dir))
	}
	b, err := l.bridge(site, link)
	if err != nil {
		return err
	}
	for i, p := range b.dirs {
		if dir == Both || dir == Direction(i+1) {
			v := imp
			p.imp.Store(&v)
		}
	}
	return nil
}

// Clear removes the impairments of both directions of a link.
func (l *Lab) Clear(site, link string) error {
	return l.Impair(site, link, Both, Impairment{})
}

// Impairments returns the impairments of a link's two directions.
func (l *Lab) Impairments(site, link string) (toRouter, fromRouter Impairment, err error) {
	b, err := l.bridge(site, link)
	if err != nil {
		return Impairment{}, Impairment{}, err
	}
	return *b.dirs[0].imp.Load(), *b.dirs[1].imp.Load(), nil
}

// ImpairCounters returns the counters of a link's bridge.
func (l *Lab) ImpairCounters(site, link string) (LinkCounters, error) {
	b, err := l.bridge(site, link)
	if err != nil {
		return LinkCounters{}, err
	}
	return LinkCounters{ToRouter: b.dirs[0].counters(), FromRouter: b.dirs[1].counters()}, nil
}

// ImpairStatus describes every bridged link, in site and link order.
func (l *Lab) ImpairStatus() []LinkStatus {
	var out []LinkStatus
	for _, s := range l.Sites {
		for _, link := range s.WAN {
			b, err := l.bridge(s.Name, link.Name)
			if err != nil {
				continue
			}
			out = append(out, b.status())
		}
	}
	return out
}

// bridge is one link's two directions.
type bridge struct {
	site, link, ns string
	gw, rt         *packetSock
	dirs           [2]*pipe // ToRouter (gw → rt), FromRouter (rt → gw)
	stop           chan struct{}
	wg             sync.WaitGroup
	once           sync.Once
}

func newBridge(site, link, ns string, gw, rt *packetSock) *bridge {
	b := &bridge{site: site, link: link, ns: ns, gw: gw, rt: rt, stop: make(chan struct{})}
	b.dirs[0] = newPipe(gw, rt)
	b.dirs[1] = newPipe(rt, gw)
	return b
}

func (b *bridge) start() {
	for _, p := range b.dirs {
		b.wg.Add(2)
		go func() { defer b.wg.Done(); p.forward(b.stop) }()
		go func() { defer b.wg.Done(); p.release(b.stop) }()
	}
}

// close stops the goroutines: the stop channel first (so that errors
// from closed sockets are recognised), then the sockets, which wakes a
// goroutine blocked in a read or write.
func (b *bridge) close() {
	b.once.Do(func() {
		close(b.stop)
		b.gw.close()
		b.rt.close()
		b.wg.Wait()
		for _, p := range b.dirs {
			p.mu.Lock()
			p.q, p.head = nil, 0
			p.mu.Unlock()
		}
	})
}

func (b *bridge) status() LinkStatus {
	return LinkStatus{
		Site: b.site, Link: b.link, Namespace: b.ns,
		ToRouter:   DirStatus{Impairment: *b.dirs[0].imp.Load(), Counters: b.dirs[0].counters()},
		FromRouter: DirStatus{Impairment: *b.dirs[1].imp.Load(), Counters: b.dirs[1].counters()},
	}
}

// held is a frame waiting for its release time.
type held struct {
	at    time.Time
	frame *[]byte
}

// pipe is one direction of a bridge.
type pipe struct {
	in, out *packetSock
	imp     atomic.Pointer[Impairment]

	mu   sync.Mutex
	q    []held // release times never decrease: a FIFO is a timer queue
	head int
	last time.Time // release time of the newest frame
	wake chan struct{}

	received, forwarded, bytes, lost, blackholed, overflow, delayed, errs, partial atomic.Uint64
}

func newPipe(in, out *packetSock) *pipe {
	p := &pipe{in: in, out: out, wake: make(chan struct{}, 1)}
	p.imp.Store(&Impairment{})
	return p
}

func (p *pipe) counters() Counters {
	p.mu.Lock()
	queued := len(p.q) - p.head
	p.mu.Unlock()
	return Counters{
		Received: p.received.Load(), Forwarded: p.forwarded.Load(), Bytes: p.bytes.Load(),
		DroppedLoss: p.lost.Load(), DroppedBlackhole: p.blackholed.Load(), DroppedQueue: p.overflow.Load(),
		Delayed: p.delayed.Load(), Errors: p.errs.Load(), ChecksumPartial: p.partial.Load(), Queued: queued,
	}
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getFrame(n int) *[]byte {
	if n > 2048 {
		b := make([]byte, n)
		return &b
	}
	b := framePool.Get().(*[]byte)
	*b = (*b)[:n]
	return b
}

func putFrame(b *[]byte) {
	if cap(*b) == 2048 {
		framePool.Put(b)
	}
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// forward reads frames, decides their fate and queues the survivors.
func (p *pipe) forward(stop <-chan struct{}) {
	buf := make([]byte, vlanTagLen+maxFrame)
	oob := make([]byte, 128)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	failures := 0
	for {
		frame, partial, err := p.in.recv(buf, oob)
		if err != nil {
			if stopped(stop) {
				return
			}
			p.errs.Add(1)
			// A socket that only fails (its device gone) must not spin.
			if failures++; failures > 1000 {
				return
			}
			continue
		}
		failures = 0
		p.received.Add(1)
		if partial {
			p.partial.Add(1)
		}
		imp := p.imp.Load()
		if imp.Blackhole {
			p.blackholed.Add(1)
			continue
		}
		if imp.Loss > 0 && rng.Float64() < imp.Loss {
			p.lost.Add(1)
			continue
		}
		d := imp.Delay
		if imp.Jitter > 0 {
			d += time.Duration((rng.Float64()*2 - 1) * float64(imp.Jitter))
		}
		fb := getFrame(len(frame))
		copy(*fb, frame)
		now := time.Now()
		at := now.Add(d)
		p.mu.Lock()
		if len(p.q)-p.head >= impairQueueLimit {
			p.mu.Unlock()
			putFrame(fb)
			p.overflow.Add(1)
			continue
		}
		if at.Before(p.last) {
			at = p.last // FIFO: never overtake the frame before
		}
		p.last = at
		empty := p.head == len(p.q)
		p.q = append(p.q, held{at: at, frame: fb})
		p.mu.Unlock()
		if at.After(now) {
			p.delayed.Add(1)
		}
		if empty {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
}

// release writes the frames whose time has come, sleeping on one timer
// set for the head of the queue.
func (p *pipe) release(stop <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	var batch []held
	for {
		batch = batch[:0]
		p.mu.Lock()
		now := time.Now()
		for p.head < len(p.q) && !p.q[p.head].at.After(now) {
			batch = append(batch, p.q[p.head])
			p.q[p.head] = held{}
			p.head++
		}
		switch {
		case p.head == len(p.q):
			p.q, p.head = p.q[:0], 0
		case p.head >= 4096 && 2*p.head >= len(p.q):
			n := copy(p.q, p.q[p.head:])
			clear(p.q[n:])
			p.q, p.head = p.q[:n], 0
		}
		var next time.Time
		pending := p.head < len(p.q)
		if pending {
			next = p.q[p.head].at
		}
		p.mu.Unlock()
		for _, h := range batch {
			if err := p.out.send(*h.frame); err != nil {
				if stopped(stop) {
					return
				}
				p.errs.Add(1)
			} else {
				p.forwarded.Add(1)
				p.bytes.Add(uint64(len(*h.frame)))
			}
			putFrame(h.frame)
		}
		if len(batch) > 0 {
			clear(batch)
			continue // time went by while writing: look again
		}
		if pending {
			t.Reset(time.Until(next))
		}
		select {
		case <-stop:
			return
		case <-p.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// vlanTagLen is an 802.1Q tag; the kernel strips it before packet
// sockets see the frame and reports it as auxiliary data.
const vlanTagLen = 4

// maxFrame is the largest frame a packet socket can deliver.
const maxFrame = 65536 + 14

// insertVLAN puts a stripped tag back in front of the EtherType; frame
// must start vlanTagLen bytes into its buffer.
func insertVLAN(buf []byte, n int, tpid, tci uint16) []byte {
	copy(buf[0:12], buf[vlanTagLen:vlanTagLen+12])
	binary.BigEndian.PutUint16(buf[12:], tpid)
	binary.BigEndian.PutUint16(buf[14:], tci)
	return buf[:n+vlanTagLen]
}
