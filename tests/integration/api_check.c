/* The public C API (include/vrdma/vrdma.h), written in C as its users would: device types
 * in the device list, creating a vdev on an interface and moving data through it,
 * provisioning it live (query_device shows it, the quota is enforced, a quota below use
 * is refused), a pdev context that answers queries only, errors with their messages,
 * EPERM for an unprivileged caller, and destroying a vdev under an open context.
 *
 * Usage: api_check NETDEV  (an interface in the daemon's namespace with no vdev on it)
 * Linked with libvrdma directly (no vrdma-run): the link order puts it before
 * libibverbs. Prints PASS/FAIL lines; exit status 0 when all passed. */
#define _DEFAULT_SOURCE 1  // usleep, fork, setuid under -std=c11
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/vrdma/vrdma.h"

static int failures;
static int passes;

#define CHECK(cond, ...)                                     \
  do {                                                       \
    if (cond) {                                              \
      passes++;                                              \
    } else {                                                 \
      failures++;                                            \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      printf(__VA_ARGS__);                                   \
      printf(" (last error: %s)\n", vrdma_last_error());     \
    }                                                        \
  } while (0)

static const char* kNewDevice = "vdev_api";

/* The device named `name` in `list` (NULL-terminated), or NULL. */
static struct ibv_device* lookup(struct ibv_device** list, const char* name) {
  for (int i = 0; list && list[i]; ++i) {
    if (strcmp(ibv_get_device_name(list[i]), name) == 0) return list[i];
  }
  return NULL;
}

/* The device named `name` in a fresh list (NULL if absent); *list must be freed. */
static struct ibv_device* find_device(struct ibv_device*** list, const char* name) {
  *list = ibv_get_device_list(NULL);
  return lookup(*list, name);
}

static uint64_t eui64_of(const char* netdev) {
  char path[128];
  unsigned m[6] = {0};
  snprintf(path, sizeof path, "/sys/class/net/%s/address", netdev);
  FILE* f = fopen(path, "r");
  if (!f) return 0;
  if (fscanf(f, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) m[0] = 0;
  fclose(f);
  uint8_t b[8] = {(uint8_t)(m[0] ^ 2), (uint8_t)m[1], (uint8_t)m[2], 0xff, 0xfe,
                  (uint8_t)m[3],       (uint8_t)m[4], (uint8_t)m[5]};
  uint64_t guid;
  memcpy(&guid, b, 8);
  return guid; /* network order, as ibv_get_device_guid returns it */
}

static void check_types_and_create(const char* netdev) {
  struct ibv_device** list;
  struct ibv_device* pdev = find_device(&list, "pdev0");
  CHECK(pdev != NULL, "pdev0 is listed");
  CHECK(ibv_get_device_type(pdev) == IBV_DEVICE_TYPE_PHYSICAL, "pdev0 is physical");
  CHECK(ibv_get_device_type(NULL) == IBV_DEVICE_TYPE_UNKNOWN, "NULL is no vrdma device");
  struct ibv_device* vdev_a = lookup(list, "vdev_a");
  CHECK(vdev_a && ibv_get_device_type(vdev_a) == IBV_DEVICE_TYPE_VIRTUAL, "vdev_a is virtual");
  CHECK(list && list[0] && ibv_get_device_type(list[0]) == IBV_DEVICE_TYPE_VIRTUAL,
        "vdevs come first in the list");

  CHECK(ibv_create_virtual_ibdev(pdev, netdev, kNewDevice) == 0, "create %s", kNewDevice);
  CHECK(strcmp(vrdma_last_error(), "") == 0, "no message after success");
  /* Refused, each with its errno and a message. */
  CHECK(ibv_create_virtual_ibdev(pdev, netdev, kNewDevice) == EEXIST, "same name again");
  CHECK(errno == EEXIST && strstr(vrdma_last_error(), "exists"), "errno and message");
  CHECK(ibv_create_virtual_ibdev(pdev, netdev, "vdev_api2") == EEXIST, "interface already bound");
  CHECK(ibv_create_virtual_ibdev(pdev, "nosuch0", "vdev_api2") == ENODEV, "no interface");
  CHECK(ibv_create_virtual_ibdev(pdev, netdev, "bad/name") == EINVAL, "bad name");
  CHECK(ibv_create_virtual_ibdev(vdev_a, netdev, "vdev_api2") == EINVAL, "a vdev is no pdev");
  CHECK(ibv_create_virtual_ibdev(pdev, netdev, "pdev0") == EEXIST, "the pdev's name");
  CHECK(ibv_create_virtual_ibdev(NULL, netdev, "vdev_api2") == EINVAL, "NULL pdev");
  ibv_free_device_list(list);

  struct ibv_device* created = find_device(&list, kNewDevice);
  CHECK(created != NULL, "the new vdev is in a fresh list");
  CHECK(created && ibv_get_device_type(created) == IBV_DEVICE_TYPE_VIRTUAL, "it is virtual");
  CHECK(created && ibv_get_device_guid(created) == eui64_of(netdev),
        "node GUID is the EUI-64 of %s's MAC", netdev);
  ibv_free_device_list(list);
}

/* An RC RDMA WRITE and a SEND between two QPs of the new vdev (its own GID), data
 * compared: the device the API made works. */
static void check_data_path(struct ibv_context* ctx) {
  enum { kLen = 8192 };
  struct ibv_pd* pd = ibv_alloc_pd(ctx);
  struct ibv_cq* cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
  char* src = malloc(kLen);
  char* dst = calloc(1, kLen);
  char* rbuf = calloc(1, kLen);
  for (int i = 0; i < kLen; ++i) src[i] = (char)(i * 7 + 3);
  int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
  struct ibv_mr* smr = ibv_reg_mr(pd, src, kLen, access);
  struct ibv_mr* dmr = ibv_reg_mr(pd, dst, kLen, access);
  struct ibv_mr* rmr = ibv_reg_mr(pd, rbuf, kLen, access);
  CHECK(pd && cq && smr && dmr && rmr, "pd, cq and mrs");
  if (!pd || !cq || !smr || !dmr || !rmr) return;
  struct ibv_qp_init_attr ia = {
      .send_cq = cq,
      .recv_cq = cq,
      .qp_type = IBV_QPT_RC,
      .cap = {.max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1}};
  struct ibv_qp* qp[2] = {ibv_create_qp(pd, &ia), ibv_create_qp(pd, &ia)};
  CHECK(qp[0] && qp[1], "two RC QPs");
  if (!qp[0] || !qp[1]) return;
  union ibv_gid gid;
  CHECK(ibv_query_gid(ctx, 1, 1, &gid) == 0, "GID 1 (link-local RoCEv2)");
  for (int i = 0; i < 2; ++i) {
    struct ibv_qp_attr a = {
        .qp_state = IBV_QPS_INIT, .port_num = 1, .qp_access_flags = IBV_ACCESS_REMOTE_WRITE};
    int rc = ibv_modify_qp(qp[i], &a,
                           IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
    struct ibv_qp_attr r = {
        .qp_state = IBV_QPS_RTR,
        .path_mtu = IBV_MTU_1024,
        .dest_qp_num = qp[1 - i]->qp_num,
        .rq_psn = 0,
        .max_dest_rd_atomic = 1,
        .min_rnr_timer = 12,
        .ah_attr = {
            .is_global = 1, .port_num = 1, .grh = {.dgid = gid, .sgid_index = 1, .hop_limit = 64}}};
    rc |= ibv_modify_qp(qp[i], &r,
                        IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                            IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
    struct ibv_qp_attr s = {.qp_state = IBV_QPS_RTS,
                            .timeout = 14,
                            .retry_cnt = 7,
                            .rnr_retry = 7,
                            .sq_psn = 0,
                            .max_rd_atomic = 1};
    rc |= ibv_modify_qp(qp[i], &s,
                        IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                            IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
    CHECK(rc == 0, "QP %d to RTS", i);
  }
  struct ibv_sge rsge = {(uintptr_t)rbuf, kLen, rmr->lkey};
  struct ibv_recv_wr rwr = {.wr_id = 3, .sg_list = &rsge, .num_sge = 1}, *bad_r;
  CHECK(ibv_post_recv(qp[1], &rwr, &bad_r) == 0, "post recv");
  struct ibv_sge sge = {(uintptr_t)src, kLen, smr->lkey};
  struct ibv_send_wr send = {.wr_id = 2,
                             .sg_list = &sge,
                             .num_sge = 1,
                             .opcode = IBV_WR_SEND,
                             .send_flags = IBV_SEND_SIGNALED};
  struct ibv_send_wr write = {.wr_id = 1,
                              .next = &send,
                              .sg_list = &sge,
                              .num_sge = 1,
                              .opcode = IBV_WR_RDMA_WRITE,
                              .send_flags = IBV_SEND_SIGNALED,
                              .wr.rdma = {(uintptr_t)dst, dmr->rkey}};
  struct ibv_send_wr* bad;
  CHECK(ibv_post_send(qp[0], &write, &bad) == 0, "post write + send");
  int got = 0, ok = 0;
  for (long spins = 0; got < 3 && spins < 200000000L; ++spins) {
    struct ibv_wc wc[4];
    int n = ibv_poll_cq(cq, 4, wc);
    for (int i = 0; i < n; ++i, ++got) ok += wc[i].status == IBV_WC_SUCCESS;
    if (n == 0 && spins % 64 == 63) usleep(100);
  }
  CHECK(got == 3 && ok == 3, "three successful completions (got %d, ok %d)", got, ok);
  CHECK(memcmp(src, dst, kLen) == 0, "RDMA WRITE data");
  CHECK(memcmp(src, rbuf, kLen) == 0, "SEND data");
  ibv_destroy_qp(qp[0]);
  ibv_destroy_qp(qp[1]);
  ibv_dereg_mr(smr);
  ibv_dereg_mr(dmr);
  ibv_dereg_mr(rmr);
  ibv_destroy_cq(cq);
  ibv_dealloc_pd(pd);
  free(src);
  free(dst);
  free(rbuf);
}

static void check_provisioning(void) {
  struct ibv_device** list;
  struct ibv_device* dev = find_device(&list, kNewDevice);
  struct ibv_device* pdev = lookup(list, "pdev0");
  struct ibv_context* ctx = dev ? ibv_open_device(dev) : NULL;
  CHECK(ctx != NULL, "open the new vdev");
  if (!ctx) return;
  check_data_path(ctx);

  struct ibv_device_attr before, after;
  CHECK(ibv_query_device(ctx, &before) == 0, "query_device");
  struct ibv_resource_config cfg = {
      .mask = IBV_RESOURCE_CONFIG_QP | IBV_RESOURCE_CONFIG_CQ | IBV_RESOURCE_CONFIG_MR_BYTES,
      .max_qp = 2,
      .max_cq = 3,
      .max_mr_bytes = 1 << 20};
  CHECK(ibv_provision_resources(dev, &cfg) == 0, "provision qp 2 cq 3 mr_bytes 1 MiB");
  CHECK(ibv_query_device(ctx, &after) == 0 && after.max_qp == 2 && after.max_cq == 3 &&
            after.max_mr_size == (1u << 20) && after.max_pd == before.max_pd,
        "query_device shows the quotas (max_qp %d max_cq %d)", after.max_qp, after.max_cq);

  /* The quota is enforced with the errno a NIC gives at its limit. */
  struct ibv_pd* pd = ibv_alloc_pd(ctx);
  struct ibv_cq* cq = ibv_create_cq(ctx, 4, NULL, NULL, 0);
  struct ibv_qp_init_attr ia = {
      .send_cq = cq,
      .recv_cq = cq,
      .qp_type = IBV_QPT_RC,
      .cap = {.max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1}};
  struct ibv_qp* q1 = ibv_create_qp(pd, &ia);
  struct ibv_qp* q2 = ibv_create_qp(pd, &ia);
  errno = 0;
  struct ibv_qp* q3 = ibv_create_qp(pd, &ia);
  CHECK(q1 && q2 && !q3 && errno == ENOMEM, "third QP refused with ENOMEM (errno %d)", errno);
  char* big = malloc(2 << 20);
  errno = 0;
  struct ibv_mr* mr = ibv_reg_mr(pd, big, 2 << 20, IBV_ACCESS_LOCAL_WRITE);
  CHECK(!mr && errno == ENOMEM, "2 MiB MR over a 1 MiB quota refused (errno %d)", errno);

  /* Below what is in use: refused, nothing changed; unknown bits; above the pdev. */
  struct ibv_resource_config low = {
      .mask = IBV_RESOURCE_CONFIG_QP | IBV_RESOURCE_CONFIG_PD, .max_qp = 1, .max_pd = 5};
  CHECK(ibv_provision_resources(dev, &low) == EBUSY && strstr(vrdma_last_error(), "in use"),
        "qp 1 below the 2 in use");
  CHECK(ibv_query_device(ctx, &after) == 0 && after.max_qp == 2 && after.max_pd == before.max_pd,
        "nothing changed, not even pd");
  struct ibv_resource_config odd = {.mask = 1u << 20, .max_qp = 4};
  CHECK(ibv_provision_resources(dev, &odd) == EINVAL, "unknown mask bit");
  struct ibv_resource_config none = {.mask = 0};
  CHECK(ibv_provision_resources(dev, &none) == EINVAL, "empty mask");
  struct ibv_resource_config huge = {.mask = IBV_RESOURCE_CONFIG_PD, .max_pd = 0xffffffffu};
  CHECK(ibv_provision_resources(dev, &huge) == ERANGE, "above the pdev's limit");
  CHECK(ibv_provision_resources(pdev, &cfg) == EINVAL, "a pdev is not provisioned");
  ibv_destroy_qp(q1);
  ibv_destroy_qp(q2);
  cfg.max_qp = 1;
  CHECK(ibv_provision_resources(dev, &cfg) == 0, "qp 1 once the QPs are gone");
  ibv_destroy_cq(cq);
  ibv_dealloc_pd(pd);
  free(big);

  /* A pdev opens for queries: its whole limits; objects belong on vdevs. */
  struct ibv_context* pctx = pdev ? ibv_open_device(pdev) : NULL;
  struct ibv_device_attr pattr;
  struct ibv_port_attr port;
  CHECK(pctx && ibv_query_device(pctx, &pattr) == 0 && pattr.max_qp > 2 &&
            pattr.node_guid == ibv_get_device_guid(pdev),
        "pdev query_device: the whole device");
  CHECK(pctx && ibv_query_port(pctx, 1, &port) == 0 && port.state == IBV_PORT_ACTIVE &&
            port.gid_tbl_len == 0,
        "pdev port: active, no GIDs");
  errno = 0;
  CHECK(pctx && ibv_alloc_pd(pctx) == NULL && errno == EOPNOTSUPP, "no PD on a pdev (errno %d)",
        errno);
  if (pctx) ibv_close_device(pctx);

  /* Destroyed under an open context: DEVICE_FATAL, then EIO. */
  CHECK(ibv_destroy_virtual_ibdev(kNewDevice) == 0, "destroy %s", kNewDevice);
  struct ibv_async_event ev;
  int fatal = 0;
  while (!fatal && ibv_get_async_event(ctx, &ev) == 0) {
    fatal = ev.event_type == IBV_EVENT_DEVICE_FATAL;
    ibv_ack_async_event(&ev);
  }
  CHECK(fatal, "IBV_EVENT_DEVICE_FATAL on the open context");
  errno = 0;
  CHECK(ibv_alloc_pd(ctx) == NULL && errno == EIO, "EIO afterwards (errno %d)", errno);
  ibv_close_device(ctx);
  CHECK(ibv_destroy_virtual_ibdev(kNewDevice) == ENODEV, "destroy again");
  CHECK(ibv_destroy_virtual_ibdev("pdev0") == ENODEV, "a pdev is not destroyed");
  CHECK(ibv_destroy_virtual_ibdev(NULL) == EINVAL, "NULL name");
  struct ibv_device** after_list;
  CHECK(find_device(&after_list, kNewDevice) == NULL, "gone from the list");
  ibv_free_device_list(after_list);
  ibv_free_device_list(list);
}

/* An unprivileged caller may look, not change. */
static void check_unprivileged(const char* netdev) {
  pid_t child = fork();
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    struct ibv_device** list;
    struct ibv_device* pdev = find_device(&list, "pdev0");
    struct ibv_device* vdev_a = lookup(list, "vdev_a");
    if (!pdev || !vdev_a) _exit(3);
    if (ibv_create_virtual_ibdev(pdev, netdev, "vdev_nobody") != EPERM) _exit(4);
    struct ibv_resource_config cfg = {.mask = IBV_RESOURCE_CONFIG_QP, .max_qp = 1};
    if (ibv_provision_resources(vdev_a, &cfg) != EPERM) _exit(5);
    if (ibv_destroy_virtual_ibdev("vdev_a") != EPERM) _exit(6);
    _exit(strstr(vrdma_last_error(), "not permitted") ? 0 : 7);
  }
  int status = -1;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "uid 65534 gets EPERM for create, provision, destroy (child status %d)",
        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  struct ibv_device** list;
  CHECK(find_device(&list, "vdev_a") != NULL, "vdev_a still there");
  ibv_free_device_list(list);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: api_check NETDEV\n");
    return 2;
  }
  check_types_and_create(argv[1]);
  check_provisioning();
  check_unprivileged(argv[1]);
  printf("api_check: %d checks passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}
