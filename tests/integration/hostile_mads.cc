// A peer that sends hostile MADs to another host's QP1 (issue 13: "garbage and hostile
// MADs from the wire"). A UD QP with the GSI's Q_Key 0x80010000 (a controlled Q_Key:
// IBTA 10.2.4 lets only a privileged consumer hold one) sends COUNT rounds of:
//   - random bytes, 256 of them (what the CM parser must refuse as not a CM MAD);
//   - short and long MADs (QP1 takes only GRH + 256 bytes);
//   - CM MADs with a valid header (class 0x07, version 2, method Send) of every
//     attribute, REQ to SIDR_REP and the undefined ones after, whose bodies are random:
//     comm IDs no connection has, fields out of range.
//
//   hostile_mads DEVICE GID_INDEX DEST_IPV4 COUNT
//
// Prints "qkey_refused" and exits 3 when the device refuses the Q_Key (an unprivileged
// caller), else "sent N" and exits 0 when every send completed. The receiving daemon must
// count and drop them and keep serving its other connections. Links libibverbs only:
// run under vrdma-run.
#include <arpa/inet.h>
#include <infiniband/verbs.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr uint32_t kGsiQkey = 0x80010000;  // IBTA 13.4.6.1: the GSI's Q_Key
constexpr int kMad = 256;
constexpr int kSlots = 64;  // send buffers, one per outstanding send

// A MAD header (IBTA 13.4.3): base version 1, class, class version, method, status,
// class-specific, transaction ID, attribute ID, reserved, attribute modifier.
void CmHeader(uint8_t* m, uint16_t attr, uint64_t tid) {
  m[0] = 1;     // BaseVersion
  m[1] = 0x07;  // MgmtClass: Communication Management
  m[2] = 2;     // ClassVersion
  m[3] = 0x03;  // Method: Send
  for (int i = 0; i < 8; ++i) m[8 + i] = static_cast<uint8_t>(tid >> (56 - 8 * i));
  m[16] = static_cast<uint8_t>(attr >> 8);
  m[17] = static_cast<uint8_t>(attr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s DEVICE GID_INDEX DEST_IPV4 COUNT\n", argv[0]);
    return 2;
  }
  const int gid_index = std::atoi(argv[2]);
  const int rounds = std::atoi(argv[4]);
  ibv_gid dgid{};
  dgid.raw[10] = dgid.raw[11] = 0xff;  // IPv4-mapped
  if (inet_pton(AF_INET, argv[3], &dgid.raw[12]) != 1) {
    std::fprintf(stderr, "bad IPv4 address %s\n", argv[3]);
    return 2;
  }
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  ibv_device* dev = nullptr;
  for (int i = 0; list && i < n; ++i) {
    if (std::strcmp(ibv_get_device_name(list[i]), argv[1]) == 0) dev = list[i];
  }
  if (!dev) {
    std::fprintf(stderr, "no device %s\n", argv[1]);
    return 1;
  }
  ibv_context* ctx = ibv_open_device(dev);
  ibv_pd* pd = ctx ? ibv_alloc_pd(ctx) : nullptr;
  ibv_cq* cq = pd ? ibv_create_cq(ctx, 2 * kSlots, nullptr, nullptr, 0) : nullptr;
  if (!cq) {
    std::perror("open/alloc_pd/create_cq");
    return 1;
  }
  std::vector<uint8_t> buf(kSlots * 512);
  ibv_mr* mr = ibv_reg_mr(pd, buf.data(), buf.size(), IBV_ACCESS_LOCAL_WRITE);
  ibv_qp_init_attr init{};
  init.send_cq = init.recv_cq = cq;
  init.qp_type = IBV_QPT_UD;
  init.cap.max_send_wr = kSlots;
  init.cap.max_recv_wr = 1;
  init.cap.max_send_sge = init.cap.max_recv_sge = 1;
  ibv_qp* qp = mr ? ibv_create_qp(pd, &init) : nullptr;
  if (!qp) {
    std::perror("reg_mr/create_qp");
    return 1;
  }
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.port_num = 1;
  a.qkey = kGsiQkey;
  if (int err =
          ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY)) {
    if (err == EPERM) {
      std::printf("qkey_refused\n");
      return 3;
    }
    std::fprintf(stderr, "modify to INIT: %s\n", std::strerror(err));
    return 1;
  }
  a = ibv_qp_attr{};
  a.qp_state = IBV_QPS_RTR;
  if (ibv_modify_qp(qp, &a, IBV_QP_STATE) != 0) return 1;
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = 0;
  if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN) != 0) return 1;
  ibv_ah_attr ah_attr{};
  ah_attr.is_global = 1;
  ah_attr.port_num = 1;
  ah_attr.grh.dgid = dgid;
  ah_attr.grh.sgid_index = static_cast<uint8_t>(gid_index);
  ah_attr.grh.hop_limit = 64;
  ibv_ah* ah = ibv_create_ah(pd, &ah_attr);
  if (!ah) {
    std::perror("create_ah");
    return 1;
  }

  std::mt19937_64 rng(0x5eed);
  int sent = 0, outstanding = 0, slot = 0;
  auto send = [&](uint32_t len, auto fill) -> bool {
    while (outstanding >= kSlots) {
      ibv_wc wc[16];
      int got = ibv_poll_cq(cq, 16, wc);
      if (got < 0) return false;
      for (int i = 0; i < got; ++i) {
        if (wc[i].status != IBV_WC_SUCCESS) {
          std::fprintf(stderr, "send completion %s\n", ibv_wc_status_str(wc[i].status));
          return false;
        }
      }
      outstanding -= got;
    }
    uint8_t* m = buf.data() + slot * 512;
    slot = (slot + 1) % kSlots;
    fill(m);
    ibv_sge sge{reinterpret_cast<uint64_t>(m), len, mr->lkey};
    ibv_send_wr wr{};
    ibv_send_wr* bad = nullptr;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.wr.ud.ah = ah;
    wr.wr.ud.remote_qpn = 1;
    wr.wr.ud.remote_qkey = kGsiQkey;
    if (ibv_post_send(qp, &wr, &bad) != 0) return false;
    ++outstanding;
    ++sent;
    return true;
  };
  auto random_bytes = [&](uint8_t* m, int len) {
    for (int i = 0; i < len; ++i) m[i] = static_cast<uint8_t>(rng());
  };
  for (int r = 0; r < rounds; ++r) {
    bool ok = send(kMad, [&](uint8_t* m) { random_bytes(m, kMad); }) &&
              send(24,
                   [&](uint8_t* m) {
                     random_bytes(m, 24);
                     CmHeader(m, 0x0013, rng());
                   }) &&
              send(400, [&](uint8_t* m) {
                random_bytes(m, 400);
                CmHeader(m, 0x0015, rng());
              });
    for (uint16_t attr = 0x0010; ok && attr <= 0x001c; ++attr) {
      ok = send(kMad, [&](uint8_t* m) {
        random_bytes(m, kMad);
        CmHeader(m, attr, rng());
        m[4] = m[5] = 0;  // status
      });
    }
    if (!ok) {
      std::fprintf(stderr, "send failed after %d MADs\n", sent);
      return 1;
    }
  }
  while (outstanding > 0) {
    ibv_wc wc[16];
    int got = ibv_poll_cq(cq, 16, wc);
    if (got < 0) return 1;
    outstanding -= got;
  }
  std::printf("sent %d\n", sent);
  ibv_destroy_ah(ah);
  ibv_destroy_qp(qp);
  ibv_dereg_mr(mr);
  ibv_destroy_cq(cq);
  ibv_dealloc_pd(pd);
  ibv_close_device(ctx);
  ibv_free_device_list(list);
  return 0;
}
