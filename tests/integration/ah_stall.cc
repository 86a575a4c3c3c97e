// A tenant that asks the daemon to resolve addresses nobody answers (issue 12, item 7):
// ibv_create_ah toward an on-link IPv4 address that is silent, COUNT times, then one RC QP
// moved to RTR toward it. Each request waits for the neighbour (about 3 s) and fails.
//
//   ah_stall DEVICE GID_INDEX IPV4 COUNT
//
// Prints, one line each as it happens (flushed, with CLOCK_MONOTONIC milliseconds):
//   start ms=T                                 the device is open, the PD allocated
//   ah_begin i=I ms=T                          ibv_create_ah called
//   ah_end i=I errno=E ms=T                    it returned (E 0: an AH was made)
//   rtr_begin ms=T / rtr_end errno=E ms=T      the same for ibv_modify_qp to RTR
//   done ms=T
// Links libibverbs only: run under vrdma-run.
#include <arpa/inet.h>
#include <infiniband/verbs.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

long long Ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void Say(const char* fmt, auto... args) {
  std::printf(fmt, args...);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s DEVICE GID_INDEX IPV4 COUNT\n", argv[0]);
    return 2;
  }
  int gid_index = std::atoi(argv[2]);
  int count = std::atoi(argv[4]);
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
  ibv_cq* cq = pd ? ibv_create_cq(ctx, 16, nullptr, nullptr, 0) : nullptr;
  if (!cq) {
    std::perror("open/alloc_pd/create_cq");
    return 1;
  }
  Say("start ms=%lld\n", Ms());
  ibv_ah_attr attr{};
  attr.is_global = 1;
  attr.port_num = 1;
  attr.grh.dgid = dgid;
  attr.grh.sgid_index = static_cast<uint8_t>(gid_index);
  attr.grh.hop_limit = 64;
  for (int i = 0; i < count; ++i) {
    Say("ah_begin i=%d ms=%lld\n", i, Ms());
    errno = 0;
    ibv_ah* ah = ibv_create_ah(pd, &attr);
    int err = ah ? 0 : (errno ? errno : -1);
    Say("ah_end i=%d errno=%d ms=%lld\n", i, err, Ms());
    if (ah) ibv_destroy_ah(ah);
  }
  ibv_qp_init_attr init{};
  init.send_cq = init.recv_cq = cq;
  init.qp_type = IBV_QPT_RC;
  init.cap.max_send_wr = init.cap.max_recv_wr = 4;
  init.cap.max_send_sge = init.cap.max_recv_sge = 1;
  ibv_qp* qp = ibv_create_qp(pd, &init);
  if (!qp) {
    std::perror("create_qp");
    return 1;
  }
  ibv_qp_attr qa{};
  qa.qp_state = IBV_QPS_INIT;
  qa.port_num = 1;
  qa.qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
  if (ibv_modify_qp(qp, &qa, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) {
    std::perror("modify_qp INIT");
    return 1;
  }
  qa = ibv_qp_attr{};
  qa.qp_state = IBV_QPS_RTR;
  qa.path_mtu = IBV_MTU_1024;
  qa.dest_qp_num = 0x11;
  qa.rq_psn = 0;
  qa.max_dest_rd_atomic = 1;
  qa.min_rnr_timer = 12;
  qa.ah_attr = attr;
  Say("rtr_begin ms=%lld\n", Ms());
  int rc = ibv_modify_qp(qp, &qa,
                         IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                             IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
  Say("rtr_end errno=%d ms=%lld\n", rc, Ms());
  ibv_destroy_qp(qp);
  ibv_destroy_cq(cq);
  ibv_dealloc_pd(pd);
  ibv_close_device(ctx);
  ibv_free_device_list(list);
  Say("done ms=%lld\n", Ms());
  return 0;
}
