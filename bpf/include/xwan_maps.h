/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the LAN data path, in one place. All are pinned by name under
 * the loader's pin root (/sys/fs/bpf/xwan by default) and carry BTF, so
 * `bpftool map dump pinned /sys/fs/bpf/xwan/<name>` prints field names.
 *
 * Rule maps hold two generations ("slots" 0 and 1). Userspace fills the idle
 * slot, then writes the new generation number to rule_gen; the slot in use is
 * generation & 1. A packet reads rule_gen once, so it never sees half a set.
 */
#ifndef XWAN_MAPS_H
#define XWAN_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xwan_types.h"

/* Destination (and source) prefix -> site. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct prefix_key);
	__type(value, struct dest_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dest_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rule_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xwan_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} settings SEC(".maps");

/* Field value -> class id, per slot: index = slot * size + value. */
#define XWAN_CLASS_ARRAY(name, size)				\
	struct {						\
		__uint(type, BPF_MAP_TYPE_ARRAY);		\
		__uint(max_entries, 2 * (size));		\
		__type(key, __u32);				\
		__type(value, __u32);				\
		__uint(pinning, LIBBPF_PIN_BY_NAME);		\
	} name SEC(".maps")

XWAN_CLASS_ARRAY(rule_proto, 256);
XWAN_CLASS_ARRAY(rule_sport, 65536);
XWAN_CLASS_ARRAY(rule_dport, 65536);
XWAN_CLASS_ARRAY(rule_vlan, 4096);
XWAN_CLASS_ARRAY(rule_src_site, XWAN_MAX_SITES);
XWAN_CLASS_ARRAY(rule_dst_site, XWAN_MAX_SITES);

/* Address prefix -> class id; every slot in use has a /0 entry. */
#define XWAN_CLASS_TRIE(name)					\
	struct {						\
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);		\
		__uint(map_flags, BPF_F_NO_PREALLOC);		\
		__uint(max_entries, 2 * (XWAN_MAX_RULES + 1));	\
		__type(key, struct rule_prefix_key);		\
		__type(value, __u32);				\
		__uint(pinning, LIBBPF_PIN_BY_NAME);		\
	} name SEC(".maps")

XWAN_CLASS_TRIE(rule_src_prefix);
XWAN_CLASS_TRIE(rule_dst_prefix);

/* Class id -> rule bit vector; index = slot * XWAN_MAX_CLASSES + class. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * XWAN_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct rule_bitmap);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rule_bitmaps SEC(".maps");

/* Rule id -> action; index = slot * (XWAN_MAX_RULES + 1) + rule id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * (XWAN_MAX_RULES + 1));
	__type(key, __u32);
	__type(value, struct rule_action);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rule_actions SEC(".maps");

/* (site, link) -> Maglev table of path ids, written by userspace/pathsel. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XWAN_MAX_SITES * 4);
	__type(key, struct site_link_key);
	__type(value, struct site_table);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} site_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XWAN_MAX_PATHS);
	__type(key, __u32);
	__type(value, struct path_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} paths SEC(".maps");

/* The flow cache; the loader may resize it before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct flow_key);
	__type(value, struct flow_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XWAN_MAX_RULES + 1);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XWAN_MAX_PATHS);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XWAN_R_MAX);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats_reasons SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XWAN_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xsks SEC(".maps");

#endif /* XWAN_MAPS_H */
