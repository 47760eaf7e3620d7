/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Simple-rule classification by bit vectors (Lakshman/Stiliadis BV, as in
 * Polycube's LBVS). Each of the eight fields maps the packet's value to a
 * class; each class has a bit vector of the rules that accept it. The AND of
 * the eight vectors holds the matching rules; the lowest bit wins (rule
 * order). A 64-bit summary per vector (bit w = word w is not zero) lets us
 * visit only the words that can hold a match, so a typical packet touches a
 * handful of words whatever the rule count.
 */
#ifndef XWAN_RULES_H
#define XWAN_RULES_H

#include "xwan_maps.h"
#include "parse.h"

#define XWAN_FIELDS 8

/* Index of the lowest set bit of a non-zero x: the population count of the
 * bits below it, branch-free so the verifier sees one path. */
static __always_inline __u32 lowest_bit(__u64 x)
{
	__u64 v = (x & -x) - 1;

	v = v - ((v >> 1) & 0x5555555555555555ULL);
	v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (v * 0x0101010101010101ULL) >> 56;
}

static __always_inline struct rule_bitmap *class_bitmap(__u32 slot, __u32 *class)
{
	__u32 idx;

	if (!class || *class >= XWAN_MAX_CLASSES)
		return NULL;
	idx = slot * XWAN_MAX_CLASSES + *class;
	return bpf_map_lookup_elem(&rule_bitmaps, &idx);
}

static __always_inline __u32 *array_class(void *map, __u32 slot, __u32 size, __u32 value)
{
	__u32 idx = slot * size + value;

	return bpf_map_lookup_elem(map, &idx);
}

static __always_inline __u32 *prefix_class(void *map, __u32 slot, const __u8 *addr)
{
	struct rule_prefix_key k = {
		.prefixlen = 8 + 128,
		.slot = slot,
	};

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(map, &k);
}

/*
 * Returns the id of the first rule that matches, XWAN_RULE_DEFAULT if none
 * does, or -1 if the rule maps are inconsistent. A global function: the
 * verifier checks it once, not once per path that reaches it.
 */
__noinline int match_rules(__u32 slot, const struct flow_key *k,
				       __u16 src_site, __u16 dst_site)
{
	struct rule_bitmap *b0, *b1, *b2, *b3, *b4, *b5, *b6, *b7;
	__u64 cand;
	__u32 w;

	if (!k)
		return -1;
	b0 = class_bitmap(slot, prefix_class(&rule_src_prefix, slot, k->saddr));
	b1 = class_bitmap(slot, prefix_class(&rule_dst_prefix, slot, k->daddr));
	b2 = class_bitmap(slot, array_class(&rule_src_site, slot, XWAN_MAX_SITES,
					    src_site % XWAN_MAX_SITES));
	b3 = class_bitmap(slot, array_class(&rule_dst_site, slot, XWAN_MAX_SITES,
					    dst_site % XWAN_MAX_SITES));
	b4 = class_bitmap(slot, array_class(&rule_proto, slot, 256, k->proto));
	b5 = class_bitmap(slot, array_class(&rule_sport, slot, 65536, k->sport));
	b6 = class_bitmap(slot, array_class(&rule_dport, slot, 65536, k->dport));
	b7 = class_bitmap(slot, array_class(&rule_vlan, slot, 4096, k->vlan & 0xfff));
	if (!b0 || !b1 || !b2 || !b3 || !b4 || !b5 || !b6 || !b7)
		return -1;

	cand = b0->summary & b1->summary & b2->summary & b3->summary &
	       b4->summary & b5->summary & b6->summary & b7->summary;
	/* Walk the candidate words in order; shifting is cheaper than finding
	 * the next set bit when most words are candidates. */
	for (w = 0; w < XWAN_BITMAP_WORDS && cand; w++, cand >>= 1) {
		__u64 m;

		if (!(cand & 1))
			continue;
		m = b0->words[w] & b1->words[w] & b2->words[w] & b3->words[w];
		if (!m)
			continue;
		m &= b4->words[w] & b5->words[w] & b6->words[w] & b7->words[w];
		if (m)
			return w * 64 + lowest_bit(m);
	}
	return XWAN_RULE_DEFAULT;
}

#endif /* XWAN_RULES_H */
