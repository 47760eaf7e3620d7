package pathsel

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/xwan-dev/xwan/userspace/policy"
)

// FlowRef is one established flow, as the gateway reads it from the
// kernel's flow table.
type FlowRef struct {
	Site uint16 // the flow's destination site (flow_entry.site_id)
	Link uint8  // its rule's preferred link, 0: none
	Path uint16 // the path it is on now
	Hash uint32 // its flow hash (packet.Key.Hash, the kernel's flow_hash)
}

// Move tells the gateway to put flows[Index] on path To. To 0: no path
// is left; delete the flow entry so the kernel decides again (secondary
// transport).
type Move struct {
	Index     int
	From, To  uint16
	Immediate bool // its path is down or gone: not part of the gradual budget
}

// plan is a site's gradual migration, from the last change of its path
// sets: at most ceil(MoveShare x base x k) flows have moved k intervals
// into it, base being the most flows that were (or had been moved) out
// of place.
type plan struct {
	start  time.Time
	base   int
	moved  int
	active bool
}

// rank orders the flows of a gradual migration: a hash of the flow hash
// (murmur3's finaliser over a different seed), so the order does not
// follow the table slot (hash % MaglevSlots) and is the same on every
// call.
func rank(h uint32) uint32 {
	h ^= 0x9e3779b9
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// target is where the kernel would put a new flow with this hash: the
// preferred link's table, else table 0 (bpf/include/paths.h pick_path).
// stay is true when the flow may stay where it is: its path is in the
// set of the table that decides.
func (st *site) target(f *FlowRef) (to uint16, stay bool) {
	l := f.Link
	if _, ok := st.tables[l]; !ok || l == 0 {
		l = 0
	}
	t, ok := st.tables[l]
	if !ok {
		return 0, false
	}
	if slices.Contains(st.sets[l], f.Path) {
		return f.Path, true
	}
	return t[f.Hash%policy.MaglevSlots], false
}

// Moves is the migration plan for the flows the gateway passes (all the
// established flows of the kernel's flow table, or those of the sites
// that are Migrating). A flow stays while its path is in the table that
// decides for it (so active/active weight changes move nothing). A flow
// on a path that is down or gone moves at once. Any other flow whose
// path left the table (a failover to passive, a failback, an unacceptable
// active/active path) moves gradually: at most MoveShare of those flows
// per MoveInterval since the paths changed, in an order fixed by their
// hashes. Each goes to the path its hash gives in the table, where a new
// flow with that hash would go. Call it every MoveInterval (or more
// often) while Migrating; the Moves returned are counted as done.
func (s *Selector) Moves(now time.Time, flows []FlowRef) []Move {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Move
	gradual := map[uint16][]int{}
	for i := range flows {
		f := &flows[i]
		st := s.sites[f.Site]
		if st == nil {
			continue
		}
		to, stay := st.target(f)
		if stay {
			continue
		}
		e := s.paths[f.Path]
		if e == nil || e.Site != f.Site || !e.h.alive() {
			if to != f.Path {
				out = append(out, Move{Index: i, From: f.Path, To: to, Immediate: true})
			}
			continue
		}
		if to != 0 && to != f.Path {
			gradual[f.Site] = append(gradual[f.Site], i)
		}
	}
	for _, id := range s.siteIDs() {
		st := s.sites[id]
		cand := gradual[id]
		if len(cand) == 0 {
			st.plan.active = false
			continue
		}
		p := &st.plan
		if !p.active {
			*p = plan{start: now, active: true}
		}
		p.base = max(p.base, p.moved+len(cand))
		k := int64(now.Sub(p.start)/s.cfg.MoveInterval) + 1
		allowed := int(math.Ceil(s.cfg.MoveShare*float64(p.base)*float64(k)-1e-9)) - p.moved
		allowed = min(max(allowed, 0), len(cand))
		if allowed == 0 {
			continue
		}
		sort.Slice(cand, func(a, b int) bool {
			ra, rb := rank(flows[cand[a]].Hash), rank(flows[cand[b]].Hash)
			if ra != rb {
				return ra < rb
			}
			return cand[a] < cand[b]
		})
		for _, i := range cand[:allowed] {
			f := &flows[i]
			to, _ := st.target(f)
			out = append(out, Move{Index: i, From: f.Path, To: to})
		}
		p.moved += allowed
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out
}

// Migrating reports whether a site's flows may need moving: its paths
// changed and Moves has not yet found every flow in place.
func (s *Selector) Migrating(siteID uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.sites[siteID]
	return st != nil && st.plan.active
}
