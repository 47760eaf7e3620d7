/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Frame parsing: Ethernet, up to two VLAN tags, IPv4 (with options) or IPv6
 * (up to XWAN_MAX_EXT_HDRS extension headers), then TCP/UDP ports or an
 * ICMP/ICMPv6 header. The Go twin is userspace/packet; both must agree on
 * every byte, which the differential test checks.
 *
 * Fragments: the first fragment carries ports and is classified like any
 * packet. Later fragments carry none: they are classified with ports 0 and
 * are never put in the flow cache.
 */
#ifndef XWAN_PARSE_H
#define XWAN_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_endian.h>
#include "xwan_types.h"

#define ETH_P_8021Q_	0x8100
#define ETH_P_8021AD_	0x88A8
#define XWAN_MAX_L3_OFF	(14 + 4 * XWAN_MAX_VLAN_TAGS)
#define XWAN_MAX_L4_OFF	1024	/* keeps offsets bounded for the verifier */

enum {
	XWAN_FRAG_NONE = 0,
	XWAN_FRAG_FIRST = 1,
	XWAN_FRAG_LATER = 2,
};

struct packet {
	struct flow_key key;
	__u8 frag;		/* XWAN_FRAG_* */
	__u8 ipv6;
};

/* Returns XWAN_R_MAX when the frame is an IP packet parsed into pkt, or the
 * reason it is not. */
static __always_inline int parse_frame(struct xdp_md *ctx, struct packet *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 off = 14, l4_off, i;
	__u16 proto;
	__u8 l4proto;

	if (data + 14 > data_end)
		return XWAN_R_TRUNC_ETH;
	proto = bpf_ntohs(*(__be16 *)(data + 12));

#pragma unroll
	for (i = 0; i < XWAN_MAX_VLAN_TAGS; i++) {
		if (proto != ETH_P_8021Q_ && proto != ETH_P_8021AD_)
			break;
		if (data + off + 4 > data_end)
			return XWAN_R_TRUNC_VLAN;
		if (i == 0)
			pkt->key.vlan = bpf_ntohs(*(__be16 *)(data + off)) & 0x0fff;
		proto = bpf_ntohs(*(__be16 *)(data + off + 2));
		off += 4;
	}
	if (proto == ETH_P_8021Q_ || proto == ETH_P_8021AD_)
		return XWAN_R_VLAN_DEPTH;

	if (proto == ETH_P_IP) {
		__u8 *ip = data + off;
		__u32 ihl, tot;
		__u16 frag;

		if ((void *)(ip + 20) > data_end)
			return XWAN_R_TRUNC_IPV4;
		ihl = (ip[0] & 0x0f) * 4;
		if ((ip[0] >> 4) != 4 || ihl < 20)
			return XWAN_R_BAD_IPV4;
		tot = ((__u32)ip[2] << 8) | ip[3];
		if (tot < ihl)
			return XWAN_R_BAD_IPV4;
		if ((void *)ip + tot > data_end)
			return XWAN_R_TRUNC_IPV4;
		pkt->key.saddr[10] = 0xff;
		pkt->key.saddr[11] = 0xff;
		__builtin_memcpy(&pkt->key.saddr[12], ip + 12, 4);
		pkt->key.daddr[10] = 0xff;
		pkt->key.daddr[11] = 0xff;
		__builtin_memcpy(&pkt->key.daddr[12], ip + 16, 4);
		l4proto = ip[9];
		frag = ((__u16)ip[6] << 8) | ip[7];
		if (frag & 0x1fff)
			pkt->frag = XWAN_FRAG_LATER;
		else if (frag & 0x2000)
			pkt->frag = XWAN_FRAG_FIRST;
		l4_off = off + ihl;
	} else if (proto == ETH_P_IPV6) {
		__u8 *ip6 = data + off;
		__u32 plen;

		if ((void *)(ip6 + 40) > data_end)
			return XWAN_R_TRUNC_IPV6;
		if ((ip6[0] >> 4) != 6)
			return XWAN_R_BAD_IPV6;
		plen = ((__u32)ip6[4] << 8) | ip6[5];
		if (plen == 0)	/* jumbograms are not supported */
			return XWAN_R_BAD_IPV6;
		if ((void *)ip6 + 40 + plen > data_end)
			return XWAN_R_TRUNC_IPV6;
		__builtin_memcpy(pkt->key.saddr, ip6 + 8, 16);
		__builtin_memcpy(pkt->key.daddr, ip6 + 24, 16);
		pkt->ipv6 = 1;
		l4proto = ip6[6];
		l4_off = off + 40;

#pragma unroll
		for (i = 0; i < XWAN_MAX_EXT_HDRS; i++) {
			__u8 *h;
			__u32 len;

			if (l4proto != IPPROTO_HOPOPTS && l4proto != IPPROTO_ROUTING &&
			    l4proto != IPPROTO_DSTOPTS && l4proto != IPPROTO_FRAGMENT &&
			    l4proto != IPPROTO_AH)
				break;
			if (l4_off > XWAN_MAX_L4_OFF)
				return XWAN_R_BAD_IPV6_EXT;
			h = data + l4_off;
			if ((void *)(h + 8) > data_end)
				return XWAN_R_BAD_IPV6_EXT;
			if (l4proto == IPPROTO_FRAGMENT) {
				__u16 fo = ((__u16)h[2] << 8) | h[3];

				len = 8;
				if (fo & 0xfff8)
					pkt->frag = XWAN_FRAG_LATER;
				else if (fo & 1)
					pkt->frag = XWAN_FRAG_FIRST;
			} else if (l4proto == IPPROTO_AH) {
				len = ((__u32)h[1] + 2) * 4;
			} else {
				len = ((__u32)h[1] + 1) * 8;
			}
			l4proto = h[0];
			l4_off += len;
			if (pkt->frag == XWAN_FRAG_LATER)
				break;
		}
		if (pkt->frag != XWAN_FRAG_LATER &&
		    (l4proto == IPPROTO_HOPOPTS || l4proto == IPPROTO_ROUTING ||
		     l4proto == IPPROTO_DSTOPTS || l4proto == IPPROTO_FRAGMENT ||
		     l4proto == IPPROTO_AH))
			return XWAN_R_BAD_IPV6_EXT;
	} else {
		return XWAN_R_NOT_IP;
	}

	pkt->key.proto = l4proto;
	if (pkt->frag == XWAN_FRAG_LATER)
		return XWAN_R_MAX;
	if (l4_off > XWAN_MAX_L4_OFF || data + l4_off > data_end)
		return XWAN_R_TRUNC_L4;

	if (l4proto == IPPROTO_TCP || l4proto == IPPROTO_UDP) {
		__u8 *l4 = data + l4_off;

		if (l4proto == IPPROTO_TCP) {
			if ((void *)(l4 + 20) > data_end)
				return XWAN_R_TRUNC_L4;
		} else if ((void *)(l4 + 8) > data_end) {
			return XWAN_R_TRUNC_L4;
		}
		pkt->key.sport = ((__u16)l4[0] << 8) | l4[1];
		pkt->key.dport = ((__u16)l4[2] << 8) | l4[3];
	} else if (l4proto == IPPROTO_ICMP || l4proto == IPPROTO_ICMPV6) {
		if (data + l4_off + 8 > data_end)
			return XWAN_R_TRUNC_L4;
	}
	return XWAN_R_MAX;
}

#endif /* XWAN_PARSE_H */
