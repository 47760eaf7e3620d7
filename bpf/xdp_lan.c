// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * LAN ingress: parse, look up the flow cache, classify new flows against
 * the simple rules, choose a path, and hand the frame with the decision in
 * XDP metadata to the AF_XDP socket of its RX queue. Anything that is not
 * for a tunnel (ARP, local traffic, direct breakout, malformed frames) goes
 * to the kernel untouched.
 */
#include "include/xwan_maps.h"
#include "include/parse.h"
#include "include/rules.h"
#include "include/paths.h"
#include "include/stats.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct xwan_meta in BTF so bpf2go emits its Go twin. */
const struct xwan_meta *unused_meta __attribute__((unused));

struct decision {
	__u32 generation;
	__u16 rule_id;
	__u16 path_id;
	__u16 site_id;
	__u8 transport;
	__u8 flags;
	__u8 reason;
};

static __always_inline int verdict(__u32 reason, __u32 len, int action)
{
	count(&stats_reasons, reason, len);
	return action;
}

static __always_inline int is_tunnel(__u8 t)
{
	return t == XWAN_T_OFFCLOUD || t == XWAN_T_CLOUD || t == XWAN_T_BACKHAUL;
}

static __always_inline __u16 tunnel_site(__u8 t, const struct dest_info *dst,
					 const struct xwan_settings *s)
{
	switch (t) {
	case XWAN_T_OFFCLOUD:
		return dst->kind == XWAN_DEST_MESH ? dst->site_id : 0;
	case XWAN_T_CLOUD:
		return s->hub_site;
	case XWAN_T_BACKHAUL:
		return dst->kind == XWAN_DEST_BACKHAUL ? dst->site_id : s->backhaul_site;
	}
	return 0;
}

/* The transport to try when the rule's own has no usable path, or 0. */
static __always_inline __u8 secondary_of(__u8 t, __u8 secondary)
{
	if (secondary == XWAN_SEC_NONE)
		return 0;
	if (secondary == XWAN_SEC_CLOUD)
		return t == XWAN_T_CLOUD ? 0 : XWAN_T_CLOUD;
	return t == XWAN_T_CLOUD ? XWAN_T_OFFCLOUD : XWAN_T_CLOUD;
}

/* Fills d from the rule's action; returns 0, or -1 if the maps are broken. */
static __always_inline int decide(struct decision *d, const struct rule_action *act,
				  const struct dest_info *dst, __u32 hash)
{
	__u32 zero = 0;
	struct xwan_settings *s = bpf_map_lookup_elem(&settings, &zero);
	__u8 t = act->transport, alt;
	__u16 site, path;

	if (!s)
		return -1;
	d->transport = t;
	if (t == XWAN_T_DIRECT) {
		d->reason = XWAN_R_DIRECT;
		return 0;
	}
	if (!is_tunnel(t)) {
		d->transport = XWAN_T_DROP;
		d->reason = XWAN_R_RULE_DROP;
		return 0;
	}
	site = tunnel_site(t, dst, s);
	path = pick_path(site, act->pref_link, hash);
	if (!path) {
		alt = secondary_of(t, act->secondary);
		if (alt) {
			site = tunnel_site(alt, dst, s);
			path = pick_path(site, act->pref_link, hash);
			if (path) {
				t = alt;
				d->flags |= XWAN_F_SECONDARY;
			}
		}
	}
	if (!path) {
		d->transport = XWAN_T_DROP;
		d->reason = XWAN_R_NO_PATH;
		return 0;
	}
	d->transport = t;
	d->path_id = path;
	d->site_id = site;
	d->reason = XWAN_R_REDIRECT;
	return 0;
}

/*
 * Puts the decision right before the frame. xwan is the only writer of
 * metadata on a LAN link, so metadata already in place can only be ours
 * (a repeated BPF_PROG_TEST_RUN keeps it between runs).
 */
static __always_inline int write_meta(struct xdp_md *ctx, const struct decision *d)
{
	struct xwan_meta *m = (void *)(long)ctx->data_meta;
	void *data = (void *)(long)ctx->data;

	if ((void *)(m + 1) > data) {
		if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m)))
			return -1;
		m = (void *)(long)ctx->data_meta;
		data = (void *)(long)ctx->data;
		if ((void *)(m + 1) > data)
			return -1;
	}
	m->magic = XWAN_META_MAGIC;
	m->generation = d->generation;
	m->rule_id = d->rule_id;
	m->path_id = d->path_id;
	m->site_id = d->site_id;
	m->transport = d->transport;
	m->flags = d->flags;
	return 0;
}

static __always_inline int cached(const struct flow_entry *fe, __u32 gen)
{
	if (fe->generation != gen)
		return 0;
	return is_tunnel(fe->transport) ? path_up(fe->path_id) : 1;
}

SEC("xdp")
int xdp_lan(struct xdp_md *ctx)
{
	struct packet pkt __attribute__((aligned(8))) = {};
	struct decision d = {};
	struct prefix_key pk = { .prefixlen = 128 };
	__u32 len = ctx->data_end - ctx->data, zero = 0, hash, slot, q;
	struct dest_info *dst, *src;
	struct rule_action *act;
	struct flow_entry *fe;
	__u16 src_site = 0;
	__u32 *gen;
	int r;

	r = parse_frame(ctx, &pkt);
	if (r != XWAN_R_MAX)
		return verdict(r, len, XDP_PASS);

	gen = bpf_map_lookup_elem(&rule_gen, &zero);
	if (!gen)
		return verdict(XWAN_R_INTERNAL, len, XDP_PASS);
	d.generation = *gen;
	if (pkt.frag)
		d.flags |= XWAN_F_FRAGMENT;
	if (pkt.ipv6)
		d.flags |= XWAN_F_IPV6;

	/*
	 * An established flow costs this one lookup, and a hit never writes
	 * the entry (no cache line bouncing between CPUs; idle flows age out
	 * of the LRU). Userspace deletes the flows of any prefix it changes
	 * in dest_prefixes, so a cached flow is always to a remote site.
	 */
	fe = pkt.frag == XWAN_FRAG_LATER ? NULL : bpf_map_lookup_elem(&flows, &pkt.key);
	if (fe && cached(fe, d.generation)) {
		d.rule_id = fe->rule_id;
		d.path_id = fe->path_id;
		d.site_id = fe->site_id;
		d.transport = fe->transport;
		d.flags |= XWAN_F_FLOW_HIT | (fe->flags & XWAN_F_SECONDARY);
		d.reason = fe->transport == XWAN_T_DIRECT ? XWAN_R_DIRECT :
			   fe->transport == XWAN_T_DROP ? XWAN_R_RULE_DROP :
			   XWAN_R_REDIRECT;
	} else {
		__builtin_memcpy(pk.addr, pkt.key.daddr, 16);
		dst = bpf_map_lookup_elem(&dest_prefixes, &pk);
		if (!dst)
			return verdict(XWAN_R_NO_ROUTE, len, XDP_PASS);
		if (dst->kind == XWAN_DEST_LOCAL)
			return verdict(XWAN_R_LOCAL, len, XDP_PASS);
		__builtin_memcpy(pk.addr, pkt.key.saddr, 16);
		src = bpf_map_lookup_elem(&dest_prefixes, &pk);
		if (src && (src->kind == XWAN_DEST_LOCAL || src->kind == XWAN_DEST_MESH))
			src_site = src->site_id;
		hash = flow_hash(&pkt.key);
		slot = d.generation & 1;
		r = match_rules(slot, &pkt.key, src_site,
				dst->kind == XWAN_DEST_MESH ? dst->site_id : 0);
		if (r < 0 || r > XWAN_RULE_DEFAULT)
			return verdict(XWAN_R_INTERNAL, len, XDP_PASS);
		d.rule_id = r;
		slot = slot * (XWAN_MAX_RULES + 1) + r;
		act = bpf_map_lookup_elem(&rule_actions, &slot);
		if (!act || decide(&d, act, dst, hash))
			return verdict(XWAN_R_INTERNAL, len, XDP_PASS);
		if (pkt.frag != XWAN_FRAG_LATER && d.reason != XWAN_R_NO_PATH) {
			struct flow_entry e = {
				.created_ns = bpf_ktime_get_coarse_ns(),
				.generation = d.generation,
				.rule_id = d.rule_id,
				.path_id = d.path_id,
				.site_id = d.site_id,
				.transport = d.transport,
				.flags = d.flags & XWAN_F_SECONDARY,
			};

			bpf_map_update_elem(&flows, &pkt.key, &e, BPF_ANY);
		}
	}

	count(&stats_rules, d.rule_id, len);
	if (d.path_id)
		count(&stats_paths, d.path_id, len);
	if (d.reason == XWAN_R_DIRECT)
		return verdict(XWAN_R_DIRECT, len, XDP_PASS);
	if (d.reason != XWAN_R_REDIRECT)
		return verdict(d.reason, len, XDP_DROP);

	if (write_meta(ctx, &d))
		return verdict(XWAN_R_META_FAIL, len, XDP_PASS);
	q = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &q))
		return verdict(XWAN_R_NO_XSK, len, XDP_PASS);
	count(&stats_reasons, XWAN_R_REDIRECT, len);
	return bpf_redirect_map(&xsks, q, XDP_PASS);
}
