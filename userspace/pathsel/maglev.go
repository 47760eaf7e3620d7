package pathsel

import (
	"hash/fnv"
	"sort"

	"github.com/xwan-dev/xwan/userspace/policy"
)

// Backend is one path in a table and its weight.
type Backend struct {
	Path   uint16
	Weight uint64 // e.g. link bandwidth in bit/s; 0 counts as 1
}

func hash(id uint16, seed byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte{seed, byte(id), byte(id >> 8)})
	return h.Sum64()
}

// Maglev builds a table of policy.MaglevSlots path ids (Eisenbud et al.,
// NSDI 2016) in which each backend owns a share of slots proportional to
// its weight. Each backend walks its own permutation of the slots and
// claims the next free one whenever its credit allows; the permutations
// depend only on the path id, so tables built from similar backend sets
// are similar. An empty backend list gives a table of zeros.
func Maglev(backends []Backend) []uint16 {
	const m = policy.MaglevSlots
	table := make([]uint16, m)
	if len(backends) == 0 {
		return table
	}
	bs := append([]Backend(nil), backends...)
	sort.Slice(bs, func(i, j int) bool { return bs[i].Path < bs[j].Path })
	var maxW uint64
	for i := range bs {
		if bs[i].Weight == 0 {
			bs[i].Weight = 1
		}
		maxW = max(maxW, bs[i].Weight)
	}
	offset := make([]uint64, len(bs))
	skip := make([]uint64, len(bs))
	next := make([]uint64, len(bs))
	credit := make([]float64, len(bs))
	for i, b := range bs {
		offset[i] = hash(b.Path, 1) % m
		skip[i] = hash(b.Path, 2)%(m-1) + 1
	}
	filled := make([]bool, m)
	for n := 0; n < m; {
		for i, b := range bs {
			credit[i] += float64(b.Weight) / float64(maxW)
			for credit[i] >= 1 && n < m {
				credit[i]--
				for {
					slot := (offset[i] + next[i]*skip[i]) % m
					next[i]++
					if !filled[slot] {
						filled[slot] = true
						table[slot] = b.Path
						n++
						break
					}
				}
			}
		}
	}
	return table
}
