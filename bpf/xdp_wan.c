// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * WAN ingress: only known peer endpoints may reach the tunnel port. Datagrams
 * to the tunnel port from anyone else are dropped and counted; everything
 * else (the link's own traffic, replies to our tunnels' ephemeral ports,
 * malformed frames) is left to the kernel.
 */
#include "include/wan_maps.h"
#include "include/parse.h"
#include "include/stats.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int wan_verdict(__u32 reason, __u32 len, int action)
{
	count(&stats_wan, reason, len);
	return action;
}

SEC("xdp")
int xdp_wan(struct xdp_md *ctx)
{
	struct packet pkt __attribute__((aligned(8))) = {};
	__u32 len = ctx->data_end - ctx->data, zero = 0;
	struct wan_settings *s;
	struct peer_key k = {};

	s = bpf_map_lookup_elem(&wan_config, &zero);
	if (!s || !s->tunnel_port)
		return XDP_PASS;
	if (parse_frame(ctx, &pkt) != XWAN_R_MAX || pkt.key.proto != IPPROTO_UDP)
		return wan_verdict(XWAN_WAN_OTHER, len, XDP_PASS);
	if (pkt.frag == XWAN_FRAG_LATER)
		return wan_verdict(XWAN_WAN_FRAGMENT, len, XDP_PASS);
	if (pkt.key.dport != s->tunnel_port)
		return wan_verdict(XWAN_WAN_OTHER, len, XDP_PASS);

	__builtin_memcpy(k.addr, pkt.key.saddr, 16);
	k.port = pkt.key.sport;
	if (bpf_map_lookup_elem(&peer_allow, &k))
		return wan_verdict(XWAN_WAN_PEER, len, XDP_PASS);
	k.port = 0;
	if (bpf_map_lookup_elem(&peer_allow, &k))
		return wan_verdict(XWAN_WAN_PEER, len, XDP_PASS);
	return wan_verdict(XWAN_WAN_UNKNOWN_PEER, len, XDP_DROP);
}
