// Raw packet QPs and flow steering through the public verbs API (ibv_create_qp with
// IBV_QPT_RAW_PACKET, ibv_create_flow): frames from vdev_a's raw QP reach vdev_b's raw QP
// whose rule they match, whole and byte for byte; the errors the kernel's devices give.
// Runs under vrdma-run, as root (verbs_check.sh), with vdev_a and vdev_b.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <infiniband/verbs.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tests/lib/verbs_peer.h"

namespace {

using vrdma::testing::GidIndex;
using vrdma::testing::OpenByName;
using vrdma::testing::PollOne;

// The MAC of the interface behind a context's GID (ndev_ifindex, then sysfs).
std::vector<uint8_t> MacOf(ibv_context* ctx) {
  ibv_gid_entry e{};
  if (ibv_query_gid_ex(ctx, 1, GidIndex(), &e, 0) != 0) return {};
  char name[IF_NAMESIZE];
  if (!if_indextoname(e.ndev_ifindex, name)) return {};
  std::ifstream f(std::string("/sys/class/net/") + name + "/address");
  std::string text;
  f >> text;
  std::vector<uint8_t> mac(6);
  if (std::sscanf(text.c_str(), "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
                  &mac[4], &mac[5]) != 6) {
    return {};
  }
  return mac;
}

struct RawSide {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  std::vector<uint8_t> buf = std::vector<uint8_t>(1 << 16);
  ibv_mr* mr = nullptr;
  std::vector<uint8_t> mac;

  void Open(const char* name) {
    ctx = OpenByName(name);
    ASSERT_NE(ctx, nullptr);
    mac = MacOf(ctx);
    ASSERT_EQ(mac.size(), 6u);
    pd = ibv_alloc_pd(ctx);
    cq = ibv_create_cq(ctx, 64, nullptr, nullptr, 0);
    mr = ibv_reg_mr(pd, buf.data(), buf.size(), IBV_ACCESS_LOCAL_WRITE);
    ASSERT_TRUE(pd && cq && mr);
    ibv_qp_init_attr a{};
    a.send_cq = cq;
    a.recv_cq = cq;
    a.cap = {32, 32, 1, 1, 0};
    a.qp_type = IBV_QPT_RAW_PACKET;
    qp = ibv_create_qp(pd, &a);
    ASSERT_NE(qp, nullptr) << std::strerror(errno);
    ibv_qp_attr m{};
    m.qp_state = IBV_QPS_INIT;
    m.port_num = 1;
    ASSERT_EQ(ibv_modify_qp(qp, &m, IBV_QP_STATE | IBV_QP_PORT), 0);
    m.qp_state = IBV_QPS_RTR;
    ASSERT_EQ(ibv_modify_qp(qp, &m, IBV_QP_STATE), 0);
    m.qp_state = IBV_QPS_RTS;
    ASSERT_EQ(ibv_modify_qp(qp, &m, IBV_QP_STATE), 0);
  }
  void Close() {
    if (qp) ibv_destroy_qp(qp);
    if (mr) ibv_dereg_mr(mr);
    if (cq) ibv_destroy_cq(cq);
    if (pd) ibv_dealloc_pd(pd);
    if (ctx) ibv_close_device(ctx);
  }
};

// A rule: Ethernet to `mac`, IPv4, UDP to `port`.
struct UdpRule {
  ibv_flow_attr attr;
  ibv_flow_spec_eth eth;
  ibv_flow_spec_ipv4 ip;
  ibv_flow_spec_tcp_udp udp;
};
// Laid out as libibverbs' users lay a rule out: each spec right after the last.
static_assert(sizeof(UdpRule) == sizeof(ibv_flow_attr) + sizeof(ibv_flow_spec_eth) +
                                     sizeof(ibv_flow_spec_ipv4) + sizeof(ibv_flow_spec_tcp_udp));

UdpRule RuleFor(const std::vector<uint8_t>& mac, uint16_t port) {
  UdpRule r{};
  r.attr.type = IBV_FLOW_ATTR_NORMAL;
  r.attr.size = sizeof r;
  r.attr.num_of_specs = 3;
  r.attr.port = 1;
  r.eth.type = IBV_FLOW_SPEC_ETH;
  r.eth.size = sizeof r.eth;
  std::memcpy(r.eth.val.dst_mac, mac.data(), 6);
  std::memset(r.eth.mask.dst_mac, 0xff, 6);
  r.ip.type = IBV_FLOW_SPEC_IPV4;
  r.ip.size = sizeof r.ip;
  r.udp.type = IBV_FLOW_SPEC_UDP;
  r.udp.size = sizeof r.udp;
  r.udp.val.dst_port = htons(port);
  r.udp.mask.dst_port = 0xffff;
  return r;
}

// An Ethernet/IPv4/UDP frame of `len` bytes at `f`, payload filled from `seed`.
void Frame(uint8_t* f, uint32_t len, const std::vector<uint8_t>& dst,
           const std::vector<uint8_t>& src, uint16_t port, uint8_t seed) {
  for (uint32_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed + i * 7);
  std::memcpy(f, dst.data(), 6);
  std::memcpy(f + 6, src.data(), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f + 14;
  std::memset(ip, 0, 20);
  ip[0] = 0x45;
  uint16_t tot = htons(static_cast<uint16_t>(len - 14));
  std::memcpy(ip + 2, &tot, 2);
  ip[8] = 64;
  ip[9] = 17;
  uint16_t sp = htons(7000), dp = htons(port);
  std::memcpy(ip + 20, &sp, 2);
  std::memcpy(ip + 22, &dp, 2);
}

int PostSend(RawSide& s, uint64_t off, uint32_t len, uint64_t id) {
  ibv_sge sge{reinterpret_cast<uintptr_t>(s.buf.data()) + off, len, s.mr->lkey};
  ibv_send_wr w{};
  w.wr_id = id;
  w.opcode = IBV_WR_SEND;
  w.send_flags = IBV_SEND_SIGNALED;
  w.sg_list = &sge;
  w.num_sge = 1;
  ibv_send_wr* bad;
  return ibv_post_send(s.qp, &w, &bad);
}

int PostRecv(RawSide& s, uint64_t off, uint32_t len, uint64_t id) {
  ibv_sge sge{reinterpret_cast<uintptr_t>(s.buf.data()) + off, len, s.mr->lkey};
  ibv_recv_wr w{};
  w.wr_id = id;
  w.sg_list = &sge;
  w.num_sge = 1;
  ibv_recv_wr* bad;
  return ibv_post_recv(s.qp, &w, &bad);
}

TEST(RawPacket, FramesReachTheRuleTheyMatchWhole) {
  RawSide a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  UdpRule rule = RuleFor(b.mac, 4444);
  ibv_flow* flow = ibv_create_flow(b.qp, &rule.attr);
  ASSERT_NE(flow, nullptr) << std::strerror(errno);
  // A rule while it steers keeps its QP (EBUSY, as the kernel counts rules on the QP).
  EXPECT_EQ(ibv_destroy_qp(b.qp), EBUSY);
  const uint32_t sizes[] = {60, 61, 333, 1000, 1514};
  for (uint32_t i = 0; i < 5; ++i) ASSERT_EQ(PostRecv(b, 8192 * (i + 1), 2048, 100 + i), 0);
  // First a frame to another port (no rule takes it), then one of each size.
  Frame(a.buf.data(), 200, b.mac, a.mac, 4445, 9);
  ASSERT_EQ(PostSend(a, 0, 200, 1), 0);
  for (uint32_t i = 0; i < 5; ++i) {
    Frame(a.buf.data() + 2048 * (i + 1), sizes[i], b.mac, a.mac, 4444, static_cast<uint8_t>(i));
    ASSERT_EQ(PostSend(a, 2048 * (i + 1), sizes[i], 2 + i), 0);
  }
  for (uint32_t i = 0; i < 6; ++i) {
    ibv_wc wc{};
    ASSERT_TRUE(PollOne(a.cq, &wc));
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
  }
  for (uint32_t i = 0; i < 5; ++i) {
    ibv_wc wc{};
    ASSERT_TRUE(PollOne(b.cq, &wc));
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
    EXPECT_EQ(wc.opcode, IBV_WC_RECV);
    EXPECT_EQ(wc.wr_id, 100u + i) << "the frame to port 4445 took no receive WQE";
    EXPECT_EQ(wc.byte_len, sizes[i]);
    EXPECT_EQ(wc.qp_num, b.qp->qp_num);
    EXPECT_EQ(0,
              std::memcmp(b.buf.data() + 8192 * (i + 1), a.buf.data() + 2048 * (i + 1), sizes[i]));
  }
  // Larger than the interface carries (MTU 9000 + header + tag): a length error.
  ASSERT_EQ(PostSend(a, 0, 9100, 9), 0);
  ibv_wc wc{};
  ASSERT_TRUE(PollOne(a.cq, &wc));
  EXPECT_EQ(wc.status, IBV_WC_LOC_LEN_ERR);
  EXPECT_EQ(ibv_destroy_flow(flow), 0);
  a.Close();
  b.Close();
}

TEST(RawPacket, RulesAndQpsTheDeviceRefuses) {
  RawSide a;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  // Rules steer to raw packet QPs only.
  ibv_qp_init_attr rc{};
  rc.send_cq = a.cq;
  rc.recv_cq = a.cq;
  rc.cap = {4, 4, 1, 1, 0};
  rc.qp_type = IBV_QPT_RC;
  ibv_qp* rc_qp = ibv_create_qp(a.pd, &rc);
  ASSERT_NE(rc_qp, nullptr);
  UdpRule rule = RuleFor(a.mac, 1);
  EXPECT_EQ(ibv_create_flow(rc_qp, &rule.attr), nullptr);
  EXPECT_EQ(errno, EOPNOTSUPP);
  ibv_destroy_qp(rc_qp);
  // A sniffer, a spec the device does not have, a size that lies, another port.
  ibv_flow_attr sniffer{};
  sniffer.type = IBV_FLOW_ATTR_SNIFFER;
  sniffer.size = sizeof sniffer;
  sniffer.port = 1;
  EXPECT_EQ(ibv_create_flow(a.qp, &sniffer), nullptr);
  EXPECT_EQ(errno, EOPNOTSUPP);
  UdpRule vxlan = RuleFor(a.mac, 1);
  vxlan.udp.type = IBV_FLOW_SPEC_VXLAN_TUNNEL;
  EXPECT_EQ(ibv_create_flow(a.qp, &vxlan.attr), nullptr);
  EXPECT_EQ(errno, EOPNOTSUPP);
  UdpRule lying = RuleFor(a.mac, 1);
  lying.udp.size = sizeof lying.udp - 4;  // shorter than a UDP spec
  EXPECT_EQ(ibv_create_flow(a.qp, &lying.attr), nullptr);
  EXPECT_EQ(errno, EINVAL);
  UdpRule port2 = RuleFor(a.mac, 1);
  port2.attr.port = 2;
  EXPECT_EQ(ibv_create_flow(a.qp, &port2.attr), nullptr);
  EXPECT_EQ(errno, EINVAL);
  // Only SEND on a raw packet QP.
  ibv_sge sge{reinterpret_cast<uintptr_t>(a.buf.data()), 64, a.mr->lkey};
  ibv_send_wr w{};
  w.opcode = IBV_WR_RDMA_WRITE;
  w.sg_list = &sge;
  w.num_sge = 1;
  ibv_send_wr* bad;
  EXPECT_NE(ibv_post_send(a.qp, &w, &bad), 0);
  a.Close();
}

// Receive-side scaling: four work queues with a CQ each, an indirection table of them and
// an RSS QP hashing source and destination IPv4 address; 32 frames from 32 sources spread
// over the queues, each whole in a WQE of the queue that completes it.
TEST(RawPacket, RssSpreadsFramesOverWorkQueues) {
  RawSide a, b;
  ASSERT_NO_FATAL_FAILURE(a.Open("vdev_a"));
  ASSERT_NO_FATAL_FAILURE(b.Open("vdev_b"));
  constexpr int kWqs = 4, kPerWq = 32;
  ibv_cq* cqs[kWqs];
  ibv_wq* wqs[kWqs];
  for (int i = 0; i < kWqs; ++i) {
    cqs[i] = ibv_create_cq(b.ctx, 64, nullptr, nullptr, 0);
    ASSERT_NE(cqs[i], nullptr);
    ibv_wq_init_attr wa{};
    wa.wq_type = IBV_WQT_RQ;
    wa.max_wr = kPerWq;
    wa.max_sge = 1;
    wa.pd = b.pd;
    wa.cq = cqs[i];
    wqs[i] = ibv_create_wq(b.ctx, &wa);
    ASSERT_NE(wqs[i], nullptr) << std::strerror(errno);
    ibv_wq_attr m{};
    m.attr_mask = IBV_WQ_ATTR_STATE;
    m.wq_state = IBV_WQS_RDY;
    ASSERT_EQ(ibv_modify_wq(wqs[i], &m), 0);
    for (int j = 0; j < kPerWq; ++j) {
      ibv_sge sge{reinterpret_cast<uintptr_t>(b.buf.data()) + (i * kPerWq + j) * 256, 256,
                  b.mr->lkey};
      ibv_recv_wr w{};
      w.wr_id = static_cast<uint64_t>(i * kPerWq + j);
      w.sg_list = &sge;
      w.num_sge = 1;
      ibv_recv_wr* bad;
      ASSERT_EQ(ibv_post_wq_recv(wqs[i], &w, &bad), 0);
    }
  }
  ibv_rwq_ind_table_init_attr ta{};
  ta.log_ind_tbl_size = 2;
  ta.ind_tbl = wqs;
  ibv_rwq_ind_table* table = ibv_create_rwq_ind_table(b.ctx, &ta);
  ASSERT_NE(table, nullptr) << std::strerror(errno);
  uint8_t key[40];
  for (int i = 0; i < 40; ++i) key[i] = static_cast<uint8_t>(i * 29 + 3);
  ibv_qp_init_attr_ex qa{};
  qa.qp_type = IBV_QPT_RAW_PACKET;
  qa.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_IND_TABLE | IBV_QP_INIT_ATTR_RX_HASH;
  qa.pd = b.pd;
  qa.rwq_ind_tbl = table;
  qa.rx_hash_conf = {IBV_RX_HASH_FUNC_TOEPLITZ, sizeof key, key,
                     IBV_RX_HASH_SRC_IPV4 | IBV_RX_HASH_DST_IPV4};
  ibv_qp* rss = ibv_create_qp_ex(b.ctx, &qa);
  ASSERT_NE(rss, nullptr) << std::strerror(errno);
  UdpRule rule = RuleFor(b.mac, 5555);
  ibv_flow* flow = ibv_create_flow(rss, &rule.attr);
  ASSERT_NE(flow, nullptr) << std::strerror(errno);
  EXPECT_EQ(ibv_destroy_rwq_ind_table(table), EBUSY) << "an RSS QP uses it";
  EXPECT_EQ(ibv_destroy_wq(wqs[0]), EBUSY) << "a table names it";

  constexpr int kFrames = 32;
  for (int i = 0; i < kFrames; ++i) {
    uint8_t* f = a.buf.data() + i * 256;
    Frame(f, 100 + i, b.mac, a.mac, 5555, static_cast<uint8_t>(i));
    f[14 + 12] = static_cast<uint8_t>(i);  // 32 source addresses
    ASSERT_EQ(PostSend(a, i * 256, 100 + i, i), 0);
    ibv_wc wc{};
    ASSERT_TRUE(PollOne(a.cq, &wc));
  }
  int got = 0, queues_used = 0;
  for (int q = 0; q < kWqs; ++q) {
    int here = 0;
    for (int tries = 0; tries < 200 && got < kFrames; ++tries) {
      ibv_wc wc{};
      int n = ibv_poll_cq(cqs[q], 1, &wc);
      if (n == 0) {
        if (tries > 20) break;
        usleep(1000);
        continue;
      }
      ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
      EXPECT_EQ(wc.qp_num, wqs[q]->wq_num) << "completes with its work queue's number";
      EXPECT_EQ(wc.wr_id / kPerWq, static_cast<uint64_t>(q)) << "a WQE of the queue whose CQ";
      const int i = static_cast<int>(wc.byte_len) - 100;
      ASSERT_TRUE(i >= 0 && i < kFrames);
      EXPECT_EQ(0, std::memcmp(b.buf.data() + wc.wr_id * 256, a.buf.data() + i * 256, wc.byte_len));
      ++here;
      ++got;
    }
    queues_used += here > 0;
  }
  EXPECT_EQ(got, kFrames);
  EXPECT_GT(queues_used, 1) << "32 sources over more than one queue";
  EXPECT_EQ(ibv_destroy_flow(flow), 0);
  EXPECT_EQ(ibv_destroy_qp(rss), 0);
  EXPECT_EQ(ibv_destroy_rwq_ind_table(table), 0);
  for (int i = 0; i < kWqs; ++i) {
    EXPECT_EQ(ibv_destroy_wq(wqs[i]), 0);
    EXPECT_EQ(ibv_destroy_cq(cqs[i]), 0);
  }
  a.Close();
  b.Close();
}

// A raw packet QP needs CAP_NET_RAW, as on the kernel's devices: root that dropped the
// capability gets EPERM (tenants.sh tries it as a user the test makes).
TEST(RawPacket, WithoutCapNetRawEperm) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (syscall(SYS_capget, &hdr, data) != 0) _exit(2);
    data[0].effective &= ~(1u << CAP_NET_RAW);
    data[0].permitted &= ~(1u << CAP_NET_RAW);
    if (syscall(SYS_capset, &hdr, data) != 0) _exit(2);
    ibv_context* ctx = OpenByName("vdev_a");
    if (!ctx) _exit(3);
    ibv_pd* pd = ibv_alloc_pd(ctx);
    ibv_cq* cq = ibv_create_cq(ctx, 4, nullptr, nullptr, 0);
    ibv_qp_init_attr a{};
    a.send_cq = cq;
    a.recv_cq = cq;
    a.cap = {4, 4, 1, 1, 0};
    a.qp_type = IBV_QPT_RAW_PACKET;
    ibv_qp* qp = ibv_create_qp(pd, &a);
    int err = errno;
    _exit(qp == nullptr && err == EPERM ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: created or another errno; 2: no capset; 3: no device";
}

}  // namespace
