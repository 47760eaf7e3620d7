package pathsel

import (
	"sort"

	"github.com/xwan-dev/xwan/userspace/policy"
)

// Update returns the table for backends that keeps as many of prev's slots
// as the new shares allow (minimal disruption):
//
//   - each backend's share is the number of slots it owns in
//     Maglev(backends), so Update with no usable prev is exactly Maglev;
//   - a slot keeps its path when the path is still a backend and does
//     not own more slots than its share;
//   - the slots of paths that are gone, and the surplus of paths above
//     their share, go to the paths below their share: first to the owner
//     of the slot in Maglev(backends) when it is short, then to the path
//     short of the most slots (ties to the lower id).
//
// So when a backend disappears only its slots change hands; when weights
// change, slots move only from backends above their share to backends
// below it, and no more of them than the difference. A prev of the wrong
// length counts as empty. prev is not modified; an empty backend list
// gives a table of zeros.
func Update(prev []uint16, backends []Backend) []uint16 {
	const m = policy.MaglevSlots
	fresh := Maglev(backends)
	if len(backends) == 0 || len(prev) != m {
		return fresh
	}
	target := map[uint16]int{}
	for _, p := range fresh {
		target[p]++
	}
	have := map[uint16]int{}
	for _, p := range prev {
		if _, ok := target[p]; ok {
			have[p]++
		}
	}
	table := make([]uint16, m)
	free := make([]bool, m)
	// Release the surplus of backends above their share, preferring slots
	// whose Maglev owner is short, then any slot Maglev gives to another.
	surplus := map[uint16]int{}
	for p, n := range have {
		if n > target[p] {
			surplus[p] = n - target[p]
		}
	}
	for pass := 0; pass < 2; pass++ {
		for s, p := range prev {
			if surplus[p] == 0 || fresh[s] == p || free[s] {
				continue
			}
			if pass == 0 && have[fresh[s]] >= target[fresh[s]] {
				continue
			}
			free[s] = true
			surplus[p]--
			have[p]--
		}
	}
	need := map[uint16]int{}
	for p, t := range target {
		need[p] = t - have[p]
	}
	for s, p := range prev {
		if _, ok := target[p]; !ok {
			free[s] = true
		}
		if !free[s] {
			table[s] = p
		}
	}
	// Free slots: to the Maglev owner if it is short.
	for s := range table {
		if free[s] && need[fresh[s]] > 0 {
			table[s] = fresh[s]
			need[fresh[s]]--
			free[s] = false
		}
	}
	// The rest: to the backend short of the most slots.
	ids := make([]uint16, 0, len(need))
	for p := range need {
		ids = append(ids, p)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for s := range table {
		if !free[s] {
			continue
		}
		best := ids[0]
		for _, p := range ids[1:] {
			if need[p] > need[best] {
				best = p
			}
		}
		table[s] = best
		need[best]--
	}
	return table
}

// Moved counts the slots whose path differs between two tables.
func Moved(a, b []uint16) int {
	n := 0
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			n++
		}
	}
	return n + max(len(a), len(b)) - min(len(a), len(b))
}
