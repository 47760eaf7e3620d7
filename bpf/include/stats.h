/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU packet and byte counters: no atomics on the fast path. */
#ifndef XWAN_STATS_H
#define XWAN_STATS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xwan_types.h"

static __always_inline void count(void *map, __u32 idx, __u32 bytes)
{
	struct counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

#endif /* XWAN_STATS_H */
