package record

// Window is a sliding replay window (the ring-of-words scheme of RFC 6479,
// as WireGuard uses it): it remembers which of the last WindowSize sequence
// numbers below the highest one seen were accepted. Records that arrive out
// of order within the window are accepted once; older ones are refused.
//
// The zero Window is ready: nothing seen yet, sequence number 0 acceptable.
type Window struct {
	last uint64 // highest sequence number accepted
	ring [windowWords]uint64
}

const (
	windowWords = 64 // a power of two
	wordBits    = 64
	// WindowSize is how far behind the highest accepted sequence number a
	// record may be and still be accepted: 4,032 records (one word of the
	// ring is always the one being filled).
	WindowSize = (windowWords - 1) * wordBits
)

// Check tells whether seq would be accepted: not seen yet, not older than
// the window, within 48 bits. It changes nothing.
func (w *Window) Check(seq uint64) bool {
	if seq > MaxSequence {
		return false
	}
	if seq > w.last {
		return true
	}
	if w.last-seq > WindowSize {
		return false
	}
	return w.ring[(seq/wordBits)%windowWords]&(1<<(seq%wordBits)) == 0
}

// Update marks seq as seen, moving the window forward when seq is the new
// highest. Call it only for a record that authenticated, after Check.
func (w *Window) Update(seq uint64) {
	if seq > MaxSequence {
		return
	}
	if seq > w.last {
		cur, next := w.last/wordBits, seq/wordBits
		diff := next - cur
		if diff > windowWords {
			diff = windowWords
		}
		for i := cur + 1; i <= cur+diff; i++ {
			w.ring[i%windowWords] = 0
		}
		w.last = seq
	} else if w.last-seq > WindowSize {
		return
	}
	w.ring[(seq/wordBits)%windowWords] |= 1 << (seq % wordBits)
}

// Accept is Check then Update: it tells whether seq is new and marks it.
func (w *Window) Accept(seq uint64) bool {
	if !w.Check(seq) {
		return false
	}
	w.Update(seq)
	return true
}
