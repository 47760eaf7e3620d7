package pathsel

import (
	"math"
	"testing"

	"github.com/xwan-dev/xwan/userspace/policy"
)

func shares(t []uint16) map[uint16]float64 {
	out := map[uint16]float64{}
	for _, p := range t {
		out[p] += 1.0 / float64(len(t))
	}
	return out
}

func TestMaglevWeights(t *testing.T) {
	s := shares(Maglev([]Backend{{Path: 1, Weight: 300}, {Path: 2, Weight: 100}}))
	if math.Abs(s[1]-0.75) > 0.01 || math.Abs(s[2]-0.25) > 0.01 {
		t.Fatalf("3:1 weights gave %v", s)
	}
	s = shares(Maglev([]Backend{{Path: 4}, {Path: 5}, {Path: 6}}))
	for p, v := range s {
		if math.Abs(v-1.0/3) > 0.01 {
			t.Fatalf("equal weights: path %d has %.3f", p, v)
		}
	}
	if got := Maglev(nil); len(got) != policy.MaglevSlots || got[0] != 0 {
		t.Fatal("empty table")
	}
}

func TestMaglevRemovalMovesLittle(t *testing.T) {
	before := Maglev([]Backend{{Path: 1}, {Path: 2}, {Path: 3}})
	after := Maglev([]Backend{{Path: 1}, {Path: 2}})
	moved := 0
	for i := range before {
		if before[i] != 3 && before[i] != after[i] {
			moved++
		}
	}
	// Maglev's promise: few slots of surviving paths change owner.
	if frac := float64(moved) / float64(len(before)); frac > 0.05 {
		t.Fatalf("%.1f%% of the surviving paths' slots moved", 100*frac)
	}
}
