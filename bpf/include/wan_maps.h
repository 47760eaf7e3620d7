/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps of the WAN program: which peers may reach the tunnel port. Pinned
 * by name next to the LAN program's maps.
 */
#ifndef XWAN_WAN_MAPS_H
#define XWAN_WAN_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xwan_types.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wan_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} wan_config SEC(".maps");

/* Peer endpoint -> site; port 0 allows every source port of an address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct peer_key);
	__type(value, struct peer_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} peer_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XWAN_WAN_R_MAX);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats_wan SEC(".maps");

#endif /* XWAN_WAN_MAPS_H */
