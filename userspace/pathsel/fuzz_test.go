package pathsel

import (
	"encoding/binary"
	"maps"
	"testing"
	"time"

	"github.com/xwan-dev/xwan/userspace/policy"
	"github.com/xwan-dev/xwan/userspace/probe"
)

// FuzzUpdate: from any previous table to any backends, Update gives
// Maglev's shares and moves exactly the slots it must.
func FuzzUpdate(f *testing.F) {
	f.Add([]byte{1, 1, 2, 1, 3, 1}, []byte{})
	f.Add([]byte{1, 3, 2, 1}, []byte{1, 0, 2, 0})
	f.Fuzz(func(t *testing.T, spec, prevBytes []byte) {
		var b []Backend
		seen := map[uint16]bool{}
		for i := 0; i+1 < len(spec) && len(b) < 12; i += 2 {
			id := uint16(spec[i]%16) + 1
			if !seen[id] {
				seen[id] = true
				b = append(b, Backend{Path: id, Weight: uint64(spec[i+1])})
			}
		}
		var prev []uint16
		if len(prevBytes) > 0 {
			// A table of the right length, from the bytes repeated.
			prev = make([]uint16, policy.MaglevSlots)
			for i := range prev {
				prev[i] = uint16(prevBytes[i%len(prevBytes)] % 20)
			}
		}
		next := Update(prev, b)
		if len(next) != policy.MaglevSlots {
			t.Fatal("length")
		}
		if len(b) == 0 {
			return
		}
		want := counts(Maglev(b))
		if got := counts(next); !maps.Equal(got, want) {
			t.Fatalf("shares %v, want %v", got, want)
		}
		if prev == nil {
			return
		}
		minimal := 0
		for p, n := range counts(prev) {
			if w, ok := want[p]; !ok {
				minimal += n
			} else if n > w {
				minimal += n - w
			}
		}
		if m := Moved(prev, next); m != minimal {
			t.Fatalf("%d slots moved, the minimum is %d", m, minimal)
		}
	})
}

// FuzzSelector plays random sequences of session, probe and quality
// changes and time on two sites (five paths of mixed precedences, one
// last resort) and checks after every step that each site's selection is
// consistent with its own view, that tables hold only live paths, and
// that after Moves no flow is left on a dead path.
func FuzzSelector(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	f.Add([]byte{8, 0, 8, 0, 8, 0, 40, 3, 6, 200, 6, 200, 6, 200})
	f.Fuzz(func(t *testing.T, script []byte) {
		s, _ := New(Config{})
		now := t0
		paths := []Path{
			{ID: 1, Site: 2, Link: 1, Precedence: Active, Bandwidth: 300},
			{ID: 2, Site: 2, Link: 2, Precedence: Active, Bandwidth: 100},
			{ID: 3, Site: 2, Link: 3, Precedence: LastResort, Bandwidth: 100},
			{ID: 4, Site: 3, Link: 1, Precedence: Active, RemotePrecedence: Passive, Bandwidth: 1},
			{ID: 5, Site: 3, Link: 2, Precedence: Passive, Bandwidth: 1},
		}
		stats := map[uint16]probe.Stats{}
		for _, p := range paths {
			if _, err := s.AddPath(p, now); err != nil {
				t.Fatal(err)
			}
			stats[p.ID] = clean()
		}
		var flows []FlowRef
		for i, h := range flowHashes(200) {
			flows = append(flows, FlowRef{Site: uint16(2 + i%2), Link: uint8(i % 3), Hash: h})
		}
		stat := func(id uint16) (probe.Stats, bool) { st, ok := stats[id]; return st, ok }
		for len(script) >= 2 {
			op, arg := script[0], script[1]
			script = script[2:]
			id := uint16(arg%5) + 1
			switch op % 7 {
			case 0:
				s.Connected(id, arg&0x80 == 0, now, "")
			case 1:
				s.ProbeDown(id, arg&0x80 == 0, 3, now)
			case 2:
				stats[id] = withJitter(time.Duration(arg) * time.Millisecond / 2)
			case 3:
				stats[id] = withLoss(int(arg % 34))
			case 4:
				now = now.Add(time.Duration(arg) * 100 * time.Millisecond)
				s.Tick(now, stat)
			case 5:
				for _, m := range s.Moves(now, flows) {
					flows[m.Index].Path = m.To
				}
				status := s.Status(now)
				for _, fl := range flows {
					if fl.Path != 0 && status[fl.Path-1].State == Down {
						t.Fatalf("flow left on down path %d", fl.Path)
					}
				}
			case 6:
				if len(script) >= 4 {
					flows[int(arg)%len(flows)].Hash = binary.BigEndian.Uint32(script)
					script = script[4:]
				}
			}
			status := s.Status(now)
			for _, site := range []uint16{2, 3} {
				checkConsistent(t, s, site, now)
				for _, tb := range s.Tables(site) {
					for _, p := range tb {
						if p == 3 || status[p-1].State == Down {
							t.Fatalf("table holds path %d (%v)", p, status[p-1].State)
						}
					}
				}
			}
		}
	})
}
