/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types and constants shared by the BPF programs and, through bpf2go's
 * -type output, by Go. Every layout here is a contract with userspace:
 * change it only together with loader/ and userspace/policy.
 */
#ifndef XWAN_TYPES_H
#define XWAN_TYPES_H

#include <linux/types.h>

#define XWAN_MAX_RULES		4096	/* rule ids 0..4095 */
#define XWAN_RULE_DEFAULT	XWAN_MAX_RULES	/* rule id of the default action */
#define XWAN_BITMAP_WORDS	(XWAN_MAX_RULES / 64)
#define XWAN_MAX_CLASSES	32768	/* per generation, all fields together */
#define XWAN_MAX_SITES		1024	/* site ids 1..1023; 0 = no site */
#define XWAN_MAX_PATHS		1024	/* path ids 1..1023; 0 = no path */
#define XWAN_MAGLEV_SLOTS	1021	/* prime */
#define XWAN_MAX_LINKS		16	/* local link ids 1..15; 0 = any */
#define XWAN_MAX_VLAN_TAGS	2
#define XWAN_MAX_EXT_HDRS	6	/* IPv6 extension headers walked */
#define XWAN_MAX_QUEUES		64
#define XWAN_META_MAGIC		0x5857414e	/* "XWAN" */

/* What a packet's destination is, from dest_prefixes. */
enum xwan_dest_kind {
	XWAN_DEST_LOCAL = 1,	/* a prefix of this site: the kernel delivers it */
	XWAN_DEST_MESH = 2,	/* a remote site's prefix */
	XWAN_DEST_BACKHAUL = 3,	/* the Internet, egressed by a backhaul server site */
};

enum xwan_transport {
	XWAN_T_OFFCLOUD = 1,	/* mesh tunnel to the destination site */
	XWAN_T_CLOUD = 2,	/* tunnel to the hub */
	XWAN_T_BACKHAUL = 3,	/* tunnel to the backhaul server site */
	XWAN_T_DIRECT = 4,	/* kernel routes it (local breakout) */
	XWAN_T_DROP = 5,
};

enum xwan_secondary {
	XWAN_SEC_AUTOMATIC = 0,	/* the other tunnel transport (off-cloud <-> cloud) */
	XWAN_SEC_NONE = 1,	/* no fallback: drop */
	XWAN_SEC_CLOUD = 2,	/* the hub */
};

enum xwan_path_state {
	XWAN_PATH_UNUSED = 0,
	XWAN_PATH_UP = 1,
	XWAN_PATH_DOWN = 2,
};

/* Why a packet got its verdict; index of stats_reasons. */
enum xwan_reason {
	XWAN_R_REDIRECT = 0,	/* to the AF_XDP socket */
	XWAN_R_NO_XSK,		/* pass: tunnel decision but no socket on the queue */
	XWAN_R_NOT_IP,		/* pass */
	XWAN_R_NO_ROUTE,	/* pass: no known remote destination */
	XWAN_R_LOCAL,		/* pass: destination is this site */
	XWAN_R_DIRECT,		/* pass: rule says direct */
	XWAN_R_RULE_DROP,	/* drop: rule says drop */
	XWAN_R_NO_PATH,		/* drop: no usable path and no secondary */
	XWAN_R_TRUNC_ETH,	/* malformed (pass untouched) from here on */
	XWAN_R_TRUNC_VLAN,
	XWAN_R_VLAN_DEPTH,
	XWAN_R_TRUNC_IPV4,
	XWAN_R_BAD_IPV4,
	XWAN_R_TRUNC_IPV6,
	XWAN_R_BAD_IPV6,
	XWAN_R_BAD_IPV6_EXT,
	XWAN_R_TRUNC_L4,
	XWAN_R_META_FAIL,	/* pass: no room for metadata */
	XWAN_R_INTERNAL,	/* pass: inconsistent maps (a bug) */
	XWAN_R_MAX,
};

/* Flags in xwan_meta.flags and flow_entry.flags. */
#define XWAN_F_FLOW_HIT		0x01	/* decision came from the flow cache */
#define XWAN_F_SECONDARY	0x02	/* the rule's secondary transport was used */
#define XWAN_F_FRAGMENT		0x04	/* an IP fragment */
#define XWAN_F_IPV6		0x08

/*
 * The decision, written in front of the frame with bpf_xdp_adjust_meta.
 * Userspace reads it from the UMEM chunk just before the frame.
 */
struct xwan_meta {
	__u32 magic;		/* XWAN_META_MAGIC */
	__u32 generation;	/* rule set generation that decided */
	__u16 rule_id;		/* XWAN_RULE_DEFAULT when no rule matched */
	__u16 path_id;
	__u16 site_id;		/* site the path leads to */
	__u8 transport;		/* enum xwan_transport */
	__u8 flags;		/* XWAN_F_* */
};

/* IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d). */
struct prefix_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct dest_info {
	__u16 site_id;
	__u8 kind;		/* enum xwan_dest_kind */
	__u8 pad;
};

/* Rule prefix tries carry the generation slot as the first data byte. */
struct rule_prefix_key {
	__u32 prefixlen;	/* 8 + address bits */
	__u8 slot;
	__u8 addr[16];
	__u8 pad[3];
};

struct rule_action {
	__u8 transport;		/* enum xwan_transport */
	__u8 secondary;		/* enum xwan_secondary */
	__u8 pref_link;		/* preferred local link id, 0 = none */
	__u8 pad;
};

/*
 * One equivalence class of one field: bit r of words[] is set when rule r
 * accepts the field values of this class; bit w of summary is set when
 * words[w] is not zero.
 */
struct rule_bitmap {
	__u64 summary;
	__u64 words[XWAN_BITMAP_WORDS];
};

struct xwan_settings {
	__u16 local_site;
	__u16 hub_site;
	__u16 backhaul_site;
	__u16 pad;
};

struct site_link_key {
	__u16 site_id;
	__u8 link_id;		/* 0: all of the site's paths */
	__u8 pad;
};

struct site_table {
	__u16 slots[XWAN_MAGLEV_SLOTS];	/* path ids; 0 = empty */
};

struct path_info {
	__u8 state;		/* enum xwan_path_state */
	__u8 link_id;		/* local WAN link */
	__u16 site_id;		/* remote site */
	__u8 remote_addr[16];	/* IPv4-mapped for IPv4 */
	__u16 remote_port;
	__u8 hub;		/* 1 if the remote site is the hub */
	__u8 pad;
};

struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;		/* host byte order; 0 without ports */
	__u16 dport;
	__u16 vlan;		/* outer VLAN id; 0 untagged */
	__u8 proto;
	__u8 pad;
};

struct flow_entry {
	__u64 created_ns;	/* bpf_ktime_get_coarse_ns when cached */
	__u32 generation;
	__u16 rule_id;
	__u16 path_id;
	__u16 site_id;
	__u8 transport;
	__u8 flags;
	__u32 pad;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/* WAN side: who may reach the tunnel port. */
enum xwan_wan_reason {
	XWAN_WAN_PEER = 0,	/* pass: tunnel traffic from a known peer */
	XWAN_WAN_UNKNOWN_PEER,	/* drop: tunnel port, unknown source */
	XWAN_WAN_OTHER,		/* pass: not for the tunnel port */
	XWAN_WAN_FRAGMENT,	/* pass: a later fragment, no port to check */
	XWAN_WAN_R_MAX,
};

struct wan_settings {
	__u16 tunnel_port;	/* host byte order; 0 = filter nothing */
	__u16 pad;
};

struct peer_key {
	__u8 addr[16];		/* IPv4-mapped for IPv4 */
	__u16 port;		/* 0: any source port */
	__u16 pad;
};

struct peer_info {
	__u16 site_id;
	__u16 pad;
};

#endif /* XWAN_TYPES_H */
