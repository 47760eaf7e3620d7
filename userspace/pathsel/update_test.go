package pathsel

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/xwan-dev/xwan/userspace/policy"
)

// flowHashes are n pseudo-random flow hashes (the kernel's hashes are
// murmur-finalised, so uniform is the right model).
func flowHashes(n int) []uint32 {
	rng := rand.New(rand.NewPCG(7, 11))
	out := make([]uint32, n)
	for i := range out {
		out[i] = rng.Uint32()
	}
	return out
}

func pathOf(t []uint16, h uint32) uint16 { return t[h%policy.MaglevSlots] }

func counts(t []uint16) map[uint16]int {
	c := map[uint16]int{}
	for _, p := range t {
		c[p]++
	}
	return c
}

// Three equal paths, one goes away: a third of the flows remap, and none
// of those on the two others.
func TestUpdateRemovalMovesOnlyItsFlows(t *testing.T) {
	before := Maglev([]Backend{{Path: 1}, {Path: 2}, {Path: 3}})
	after := Update(before, []Backend{{Path: 1}, {Path: 2}})
	hashes := flowHashes(10_000)
	moved, onOthers := 0, 0
	for _, h := range hashes {
		b, a := pathOf(before, h), pathOf(after, h)
		if a == 3 {
			t.Fatal("a removed path is still in the table")
		}
		if b != a {
			moved++
			if b != 3 {
				onOthers++
			}
		}
	}
	if onOthers != 0 {
		t.Fatalf("%d flows of the remaining paths moved", onOthers)
	}
	if frac := float64(moved) / float64(len(hashes)); frac < 0.30 || frac > 0.37 {
		t.Fatalf("%.3f of the flows moved, want about a third", frac)
	}
	// The survivors now share the table equally (Maglev's shares).
	if c := counts(after); c[1]+c[2] != policy.MaglevSlots || math.Abs(float64(c[1]-c[2])) > 1 {
		t.Fatalf("shares %v", c)
	}
	// Plain Maglev is close, but not this strict.
	rebuilt := Maglev([]Backend{{Path: 1}, {Path: 2}})
	t.Logf("a rebuilt table would have moved %d surviving slots; Update moved none", Moved(before, rebuilt)-counts(before)[3])
}

// 3:1 bandwidth gives 75/25 +- 5 % of the flows, from scratch and when
// the weights of an existing equal table change; in the latter, slots
// only go from the path above its share to the one below.
func TestUpdateWeights(t *testing.T) {
	hashes := flowHashes(10_000)
	share := func(tb []uint16) (float64, float64) {
		c := map[uint16]int{}
		for _, h := range hashes {
			c[pathOf(tb, h)]++
		}
		return float64(c[1]) / float64(len(hashes)), float64(c[2]) / float64(len(hashes))
	}
	w31 := []Backend{{Path: 1, Weight: 300_000_000}, {Path: 2, Weight: 100_000_000}}
	for name, tb := range map[string][]uint16{
		"fresh":   Update(nil, w31),
		"updated": Update(Maglev([]Backend{{Path: 1, Weight: 1}, {Path: 2, Weight: 1}}), w31),
	} {
		a, b := share(tb)
		if math.Abs(a-0.75) > 0.05 || math.Abs(b-0.25) > 0.05 {
			t.Fatalf("%s: 3:1 gave %.3f/%.3f", name, a, b)
		}
	}
	equal := Maglev([]Backend{{Path: 1, Weight: 1}, {Path: 2, Weight: 1}})
	upd := Update(equal, w31)
	target := counts(Maglev(w31))
	for s := range equal {
		if equal[s] != upd[s] && !(equal[s] == 2 && upd[s] == 1) {
			t.Fatalf("slot %d went from %d to %d", s, equal[s], upd[s])
		}
	}
	if m := Moved(equal, upd); m != counts(equal)[2]-target[2] {
		t.Fatalf("%d slots moved, the minimum is %d", m, counts(equal)[2]-target[2])
	}
}

// Adding a path takes slots only for it.
func TestUpdateAddition(t *testing.T) {
	two := Maglev([]Backend{{Path: 1}, {Path: 2}})
	three := Update(two, []Backend{{Path: 1}, {Path: 2}, {Path: 3}})
	for s := range two {
		if two[s] != three[s] && three[s] != 3 {
			t.Fatalf("slot %d went from %d to %d", s, two[s], three[s])
		}
	}
	if Moved(two, three) != counts(three)[3] {
		t.Fatal("moved more than the new path's share")
	}
}

func TestUpdateFromNothingIsMaglev(t *testing.T) {
	b := []Backend{{Path: 4, Weight: 10}, {Path: 9, Weight: 30}, {Path: 2, Weight: 20}}
	if !slices.Equal(Update(nil, b), Maglev(b)) {
		t.Fatal("nil prev")
	}
	if !slices.Equal(Update(make([]uint16, 7), b), Maglev(b)) {
		t.Fatal("wrong-length prev")
	}
	other := Maglev([]Backend{{Path: 100}, {Path: 101}})
	if !slices.Equal(Update(other, b), Maglev(b)) {
		t.Fatal("disjoint prev")
	}
	if got := Update(other, nil); !slices.Equal(got, make([]uint16, policy.MaglevSlots)) {
		t.Fatal("no backends")
	}
	tb := Update(other, b)
	if !slices.Equal(Update(tb, b), tb) {
		t.Fatal("not idempotent")
	}
}

// TestUpdateMinimal: over random changes of backends and weights, every
// table has Maglev's shares, and the slots that change hands are exactly
// those of removed paths plus the surplus of paths above their share.
func TestUpdateMinimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var prev []uint16
	for round := 0; round < 300; round++ {
		var b []Backend
		for id := uint16(1); id <= 8; id++ {
			if rng.IntN(3) > 0 {
				b = append(b, Backend{Path: id, Weight: uint64(1 + rng.IntN(4))})
			}
		}
		next := Update(prev, b)
		want := counts(Maglev(b))
		got := counts(next)
		if len(b) > 0 && !maps.Equal(got, want) {
			t.Fatalf("round %d: shares %v, want %v", round, got, want)
		}
		if prev != nil && len(b) > 0 {
			old := counts(prev)
			minimal := 0
			for p, n := range old {
				if w, ok := want[p]; !ok {
					minimal += n
				} else if n > w {
					minimal += n - w
				}
			}
			if m := Moved(prev, next); m != minimal {
				t.Fatalf("round %d: %d slots moved, the minimum is %d", round, m, minimal)
			}
		}
		prev = next
	}
}
