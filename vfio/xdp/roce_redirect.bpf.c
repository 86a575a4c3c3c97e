// XDP program for vrdmad's AF_XDP ports: RoCE frames (ethertype 0x8915, or UDP to port
// 4791 over IPv4 or IPv6, untagged or with one 802.1Q tag) go to the AF_XDP socket of
// their queue; everything else (ARP, neighbour discovery, TCP, ...) passes to the
// kernel, which keeps working on the interface. DPDK's AF_XDP PMD loads it with
// xdp_prog= and puts its socket into the map named xsks_map.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ROCE_V1_ETHERTYPE 0x8915
#define ROCE_V2_UDP_PORT 4791

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u32);
} xsks_map SEC(".maps");

SEC("xdp")
int roce_redirect(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return XDP_PASS;
  __u16 proto = eth->h_proto;
  void *l3 = eth + 1;
  if (proto == bpf_htons(ETH_P_8021Q)) {
    if (l3 + 4 > end) return XDP_PASS;
    proto = *(__u16 *)(l3 + 2);
    l3 += 4;
  }
  if (proto == bpf_htons(ROCE_V1_ETHERTYPE)) goto roce;
  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = l3;
    if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP) return XDP_PASS;
    if (ip->frag_off & bpf_htons(0x3fff)) return XDP_PASS;  // fragments: the kernel's
    struct udphdr *udp = l3 + ip->ihl * 4;
    if ((void *)(udp + 1) > end) return XDP_PASS;
    if (udp->dest == bpf_htons(ROCE_V2_UDP_PORT)) goto roce;
    return XDP_PASS;
  }
  if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = l3;
    if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP) return XDP_PASS;
    struct udphdr *udp = (void *)(ip6 + 1);
    if ((void *)(udp + 1) > end) return XDP_PASS;
    if (udp->dest == bpf_htons(ROCE_V2_UDP_PORT)) goto roce;
  }
  return XDP_PASS;
roce:
  return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
