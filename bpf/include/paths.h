/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Path choice: a new flow takes the slot of its hash in the destination
 * site's Maglev table (written by userspace/pathsel, weighted by link
 * bandwidth, healthy paths only); the flow cache then keeps it there while
 * the path is up. The hash is mirrored in userspace/policy (FlowHash).
 */
#ifndef XWAN_PATHS_H
#define XWAN_PATHS_H

#include "xwan_maps.h"

/* FNV-1a over the key's ten little-endian words, then murmur3's finaliser. */
static __always_inline __u32 flow_hash(const struct flow_key *k)
{
	const __u32 *w = (const __u32 *)k;
	__u32 h = 0x811c9dc5;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*k) / 4); i++) {
		h ^= w[i];
		h *= 0x01000193;
	}
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline int path_up(__u32 path_id)
{
	struct path_info *p;

	if (path_id == 0 || path_id >= XWAN_MAX_PATHS)
		return 0;
	p = bpf_map_lookup_elem(&paths, &path_id);
	return p && p->state == XWAN_PATH_UP;
}

static __always_inline __u16 table_path(__u16 site, __u8 link, __u32 hash)
{
	struct site_link_key k = { .site_id = site, .link_id = link };
	struct site_table *t = bpf_map_lookup_elem(&site_paths, &k);
	__u32 slot = hash % XWAN_MAGLEV_SLOTS;
	__u16 p;

	/* libbpf's barrier_var keeps the check the verifier needs. */
	barrier_var(slot);
	if (!t || slot >= XWAN_MAGLEV_SLOTS)
		return 0;
	p = t->slots[slot];
	return path_up(p) ? p : 0;
}

/* The path for a new flow to site, on pref_link if it has a usable one. */
static __always_inline __u16 pick_path(__u16 site, __u8 pref_link, __u32 hash)
{
	__u16 p = 0;

	if (site == 0)
		return 0;
	if (pref_link)
		p = table_path(site, pref_link, hash);
	if (!p)
		p = table_path(site, 0, hash);
	return p;
}

#endif /* XWAN_PATHS_H */
