package tunnel

import (
	"fmt"
	"net/netip"

	"github.com/xwan-dev/xwan/userspace/record"
)

// Batch collects frames for any number of sessions, sealing each at once
// into one contiguous buffer per destination, and sends them with one
// system call per socket when flushed: sendmmsg, with runs of equal-sized
// records to one destination as single UDP GSO messages (up to 64
// datagrams), when the kernel has GSO. A Batch belongs to one goroutine
// (an AF_XDP queue's reader, the tunnel device's reader); sessions may be
// shared between batches, since each record takes its sequence number from
// the session's Sealer.
type Batch struct {
	dests  []*batchDest
	free   []*batchDest
	queued int
	err    error // the first send error since the last Flush
}

type batchDest struct {
	ep     *sock
	remote netip.AddrPort
	gso    bool
	buf    []byte // the sealed records, back to back
	msgs   []wireMsg
	runEnd bool // the last message's run ended with a shorter record
}

// batchBuffer is one destination's buffer: a full AF_XDP batch of
// full-size records fits.
const batchBuffer = 64*(1600+record.Overhead) + record.ScratchLen

// NewBatch returns an empty Batch.
func NewBatch() *Batch { return &Batch{} }

// Len is how many records wait for Flush.
func (b *Batch) Len() int { return b.queued }

func (b *Batch) dest(s *Session) *batchDest {
	for _, d := range b.dests {
		if d.ep == s.ep && d.remote == s.p.remote {
			return d
		}
	}
	var d *batchDest
	if n := len(b.free); n > 0 {
		d, b.free = b.free[n-1], b.free[:n-1]
	} else {
		d = &batchDest{buf: make([]byte, 0, batchBuffer), msgs: make([]wireMsg, 0, 64)}
	}
	d.ep, d.remote = s.ep, s.p.remote
	d.gso, _ = s.ep.conn.offload()
	b.dests = append(b.dests, d)
	return d
}

// Add seals payload as one frame of type t for session s and queues it.
func (b *Batch) Add(s *Session, t FrameType, payload []byte) error {
	if !t.valid() {
		return fmt.Errorf("%w: %d", ErrUnknownFrameType, uint8(t))
	}
	if s.ended.Load() {
		return fmt.Errorf("tunnel: send to %s at %s: %w", s.info.Site, s.info.Remote, ErrClosed)
	}
	n := 1 + len(payload)
	if n > maxRecord {
		return fmt.Errorf("tunnel: frame of %d bytes: %w", n, record.ErrTooLarge)
	}
	size := record.Overhead + n
	need := size + record.ScratchLen
	d := b.dest(s)
	if cap(d.buf)-len(d.buf) < need {
		if err := b.flushDest(d); err != nil && b.err == nil {
			b.err = err
		}
		if cap(d.buf) < need {
			d.buf = make([]byte, 0, need)
		}
	}
	off := len(d.buf)
	area := d.buf[off : off+need]
	area[record.PayloadOffset] = byte(t)
	copy(area[record.PayloadOffset+1:], payload)
	sealer := s.sealer.Load()
	rec, err := sealer.SealInPlace(area, record.ApplicationData, n)
	if err != nil {
		return s.sealError(err)
	}
	s.sealed(sealer)
	d.buf = d.buf[:off+len(rec)]
	b.queued++
	// Extend the open GSO run: equal sizes, the last one may be shorter.
	if k := len(d.msgs); d.gso && k > 0 && !d.runEnd {
		m := &d.msgs[k-1]
		segs := (len(m.buf) + m.seg - 1) / m.seg
		if size <= m.seg && segs < maxSegments && len(m.buf)+size <= maxGSOBytes {
			m.buf = d.buf[off-len(m.buf) : off+size]
			d.runEnd = size < m.seg
			return nil
		}
	}
	d.msgs = append(d.msgs, wireMsg{buf: d.buf[off : off+size], addr: d.remote, seg: size})
	d.runEnd = false
	return nil
}

func (b *Batch) flushDest(d *batchDest) error {
	if len(d.msgs) == 0 {
		return nil
	}
	err := d.ep.conn.write(d.msgs)
	for _, m := range d.msgs {
		b.queued -= (len(m.buf) + m.seg - 1) / m.seg
	}
	d.msgs = d.msgs[:0]
	d.buf = d.buf[:0]
	d.runEnd = false
	return err
}

// Flush sends everything queued. It returns the first error (records to
// a socket that failed are lost, as datagrams are).
func (b *Batch) Flush() error {
	first := b.err
	b.err = nil
	for _, d := range b.dests {
		if err := b.flushDest(d); err != nil && first == nil {
			first = err
		}
		d.ep = nil
		b.free = append(b.free, d)
	}
	clear(b.dests)
	b.dests = b.dests[:0]
	b.queued = 0
	return first
}
