package record

import (
	"encoding/binary"
	"testing"
)

// refWindow is the replay window's specification: a record is accepted
// once, if it is not older than WindowSize behind the highest accepted one.
type refWindow struct {
	seen map[uint64]bool
	max  uint64
}

func (r *refWindow) accept(seq uint64) bool {
	if seq > MaxSequence || r.seen[seq] {
		return false
	}
	if len(r.seen) > 0 && seq < r.max && r.max-seq > WindowSize {
		return false
	}
	r.seen[seq] = true
	r.max = max(r.max, seq)
	return true
}

func TestWindow(t *testing.T) {
	var w Window
	steps := []struct {
		seq  uint64
		want bool
	}{
		{0, true}, {0, false}, {1, true}, {5, true}, {3, true}, {3, false}, {2, true},
		{5000, true}, {5000 - WindowSize, true}, {5000 - WindowSize - 1, false}, {4, false},
		{1 << 20, true}, {1<<20 - 1, true}, {5000, false},
		{MaxSequence, true}, {MaxSequence, false}, {MaxSequence + 1, false}, {MaxSequence - WindowSize, true},
	}
	for _, s := range steps {
		if got := w.Accept(s.seq); got != s.want {
			t.Errorf("Accept(%d) = %v, want %v", s.seq, got, s.want)
		}
	}
}

// TestWindowReordering: a window of at least 1,024 records accepts every
// record of a burst delivered in any order within it, exactly once.
func TestWindowReordering(t *testing.T) {
	if WindowSize < 1024 {
		t.Fatalf("WindowSize %d < 1024", WindowSize)
	}
	var w Window
	const n = 5000
	// Deliver 0..n-1 with every block of 1,024 reversed.
	for base := uint64(0); base < n; base += 1024 {
		for i := min(base+1023, n-1); ; i-- {
			if !w.Accept(i) {
				t.Fatalf("record %d refused", i)
			}
			if i == base {
				break
			}
		}
	}
	for i := uint64(n - WindowSize); i < n; i++ {
		if w.Accept(i) {
			t.Fatalf("record %d accepted twice", i)
		}
	}
}

func checkWindow(t *testing.T, data []byte) {
	var w Window
	ref := refWindow{seen: map[uint64]bool{}}
	var seq uint64
	for len(data) >= 3 {
		op := data[0]
		d := uint64(binary.BigEndian.Uint16(data[1:3]))
		data = data[3:]
		switch op % 4 {
		case 0: // forward
			seq += d
		case 1: // back
			if d <= seq {
				seq -= d
			} else {
				seq = 0
			}
		case 2: // far jump
			seq += d << 20
		case 3: // near the 48-bit end
			seq = MaxSequence - d
		}
		if got, want := w.Check(seq), !ref.seen[seq] && (len(ref.seen) == 0 || seq >= ref.max || ref.max-seq <= WindowSize) && seq <= MaxSequence; got != want {
			t.Fatalf("Check(%d) = %v, reference %v (max %d)", seq, got, want, ref.max)
		}
		if got, want := w.Accept(seq), ref.accept(seq); got != want {
			t.Fatalf("Accept(%d) = %v, reference %v (max %d)", seq, got, want, ref.max)
		}
	}
}

func FuzzWindow(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 5, 1, 0, 2, 1, 0, 2, 2, 0, 1, 1, 0x0f, 0xc0})
	f.Add([]byte{3, 0, 0, 3, 0, 0, 1, 0x10, 0})
	f.Fuzz(checkWindow)
}
