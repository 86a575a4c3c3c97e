// UCX's UCP over two vdevs, with every byte it moves compared: one process, two UCP
// contexts, each allowed one transport on one device (UCX_TLS, UCX_NET_DEVICES), so the
// only path between them is that transport between the two vdevs. Tagged messages (eager
// and rendezvous), put and get into memory the other context mapped, active messages
// (eager and rendezvous), each at 8 B, 64 KiB and 1 MiB, both ways.
//
//   ucx_check TRANSPORT DEVICE_A DEVICE_B      e.g. ucx_check rc_verbs vdev_a:1 vdev_b:1
//
// Prints one line per check; exits 0 only if every check moved the right bytes.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucp/api/ucp.h>

static int failures;

struct side {
  const char* name;
  ucp_context_h context;
  ucp_worker_h worker;
  ucp_ep_h ep;  // to the other side
};

static void Progress(struct side* a, struct side* b) {
  ucp_worker_progress(a->worker);
  ucp_worker_progress(b->worker);
}

// Waits for a request of a or b: NULL (done at once), an error pointer, or a request.
static ucs_status_t Wait(struct side* a, struct side* b, ucs_status_ptr_t req) {
  if (req == NULL) return UCS_OK;
  if (UCS_PTR_IS_ERR(req)) return UCS_PTR_STATUS(req);
  ucs_status_t st;
  long spins = 0;
  while ((st = ucp_request_check_status(req)) == UCS_INPROGRESS) {
    Progress(a, b);
    if (++spins > 200000000L) return UCS_ERR_TIMED_OUT;
  }
  ucp_request_free(req);
  return st;
}

static void Report(const char* what, const char* from, size_t size, ucs_status_t st, int same) {
  int ok = st == UCS_OK && same;
  if (!ok) failures++;
  printf("%-4s %-4s %8zu B from %s: %s%s%s\n", ok ? "ok" : "FAIL", what, size, from,
         st == UCS_OK ? "" : ucs_status_string(st), st == UCS_OK && !same ? "bytes differ" : "",
         ok ? "bytes compared" : "");
}

static void Fill(uint8_t* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 11));
}

static int Open(struct side* s, const char* tls, const char* dev) {
  ucp_config_t* config;
  if (ucp_config_read(NULL, NULL, &config) != UCS_OK) return -1;
  if (ucp_config_modify(config, "TLS", tls) != UCS_OK ||
      ucp_config_modify(config, "NET_DEVICES", dev) != UCS_OK) {
    ucp_config_release(config);
    return -1;
  }
  ucp_params_t params = {0};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA | UCP_FEATURE_AM;
  ucs_status_t st = ucp_init(&params, config, &s->context);
  ucp_config_release(config);
  if (st != UCS_OK) {
    fprintf(stderr, "ucp_init on %s over %s: %s\n", dev, tls, ucs_status_string(st));
    return -1;
  }
  ucp_worker_params_t wp = {0};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SINGLE;
  st = ucp_worker_create(s->context, &wp, &s->worker);
  if (st != UCS_OK) {
    fprintf(stderr, "ucp_worker_create on %s: %s\n", dev, ucs_status_string(st));
    return -1;
  }
  return 0;
}

static int Connect(struct side* from, struct side* to) {
  ucp_address_t* address;
  size_t length;
  if (ucp_worker_get_address(to->worker, &address, &length) != UCS_OK) return -1;
  ucp_ep_params_t ep = {0};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
  ep.address = address;
  ucs_status_t st = ucp_ep_create(from->worker, &ep, &from->ep);
  ucp_worker_release_address(to->worker, address);
  if (st != UCS_OK) fprintf(stderr, "ucp_ep_create: %s\n", ucs_status_string(st));
  return st == UCS_OK ? 0 : -1;
}

static void Tag(struct side* s, struct side* r, size_t size, unsigned seed) {
  uint8_t* out = malloc(size);
  uint8_t* in = calloc(1, size);
  Fill(out, size, seed);
  ucp_request_param_t p = {0};
  ucs_status_ptr_t recv = ucp_tag_recv_nbx(r->worker, in, size, seed, (ucp_tag_t)-1, &p);
  ucs_status_ptr_t send = ucp_tag_send_nbx(s->ep, out, size, seed, &p);
  ucs_status_t st = Wait(s, r, send);
  ucs_status_t st2 = Wait(s, r, recv);
  Report("tag", s->name, size, st != UCS_OK ? st : st2, memcmp(in, out, size) == 0);
  free(out);
  free(in);
}

// put from s into memory r mapped, then get it back into a third buffer.
static void PutGet(struct side* s, struct side* r, size_t size, unsigned seed) {
  uint8_t* target = calloc(1, size);
  uint8_t* out = malloc(size);
  uint8_t* back = calloc(1, size);
  Fill(out, size, seed);
  ucp_mem_map_params_t mp = {0};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  mp.address = target;
  mp.length = size;
  ucp_mem_h memh = NULL;
  ucs_status_t st = ucp_mem_map(r->context, &mp, &memh);
  void* packed = NULL;
  size_t packed_size = 0;
  ucp_rkey_h rkey = NULL;
  if (st == UCS_OK) st = ucp_rkey_pack(r->context, memh, &packed, &packed_size);
  if (st == UCS_OK) st = ucp_ep_rkey_unpack(s->ep, packed, &rkey);
  if (packed) ucp_rkey_buffer_release(packed);
  ucp_request_param_t p = {0};
  if (st == UCS_OK) st = Wait(s, r, ucp_put_nbx(s->ep, out, size, (uintptr_t)target, rkey, &p));
  if (st == UCS_OK) st = Wait(s, r, ucp_ep_flush_nbx(s->ep, &p));
  Report("put", s->name, size, st, memcmp(target, out, size) == 0);
  ucs_status_t gst = st;
  if (gst == UCS_OK) gst = Wait(s, r, ucp_get_nbx(s->ep, back, size, (uintptr_t)target, rkey, &p));
  if (gst == UCS_OK) gst = Wait(s, r, ucp_ep_flush_nbx(s->ep, &p));
  Report("get", s->name, size, gst, memcmp(back, out, size) == 0);
  if (rkey) ucp_rkey_destroy(rkey);
  if (memh) ucp_mem_unmap(r->context, memh);
  free(target);
  free(out);
  free(back);
}

// Active messages: the handler copies eager data, and takes rendezvous data into `am_in`.
static uint8_t* am_in;
static size_t am_len;
static int am_done;
static ucs_status_ptr_t am_rndv;
static ucp_worker_h am_worker;

static void AmDataDone(void* request, ucs_status_t status, size_t length, void* user_data) {
  (void)request;
  (void)length;
  (void)user_data;
  am_done = status == UCS_OK ? 1 : -1;
}

static ucs_status_t OnAm(void* arg, const void* header, size_t header_length, void* data,
                         size_t length, const ucp_am_recv_param_t* param) {
  (void)arg;
  (void)header;
  (void)header_length;
  am_len = length;
  if (length > 0 && (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)) {
    ucp_request_param_t p = {0};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK;
    p.cb.recv_am = AmDataDone;
    ucs_status_ptr_t req = ucp_am_recv_data_nbx(am_worker, data, am_in, length, &p);
    if (req == NULL) {
      am_done = 1;
    } else if (UCS_PTR_IS_ERR(req)) {
      am_done = -1;
    } else {
      am_rndv = req;
    }
    return UCS_OK;
  }
  memcpy(am_in, data, length);
  am_done = 1;
  return UCS_OK;
}

static void Am(struct side* s, struct side* r, size_t size, unsigned seed) {
  uint8_t* out = malloc(size);
  am_in = calloc(1, size);
  am_len = 0;
  am_done = 0;
  am_rndv = NULL;
  am_worker = r->worker;
  Fill(out, size, seed);
  ucp_am_handler_param_t hp = {0};
  hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB;
  hp.id = 7;
  hp.cb = OnAm;
  ucs_status_t st = ucp_worker_set_am_recv_handler(r->worker, &hp);
  ucp_request_param_t p = {0};
  if (st == UCS_OK) st = Wait(s, r, ucp_am_send_nbx(s->ep, 7, NULL, 0, out, size, &p));
  long spins = 0;
  while (st == UCS_OK && am_done == 0 && ++spins < 200000000L) Progress(s, r);
  if (am_rndv) {
    ucp_request_free(am_rndv);
    am_rndv = NULL;
  }
  if (st == UCS_OK && am_done != 1) st = am_done == 0 ? UCS_ERR_TIMED_OUT : UCS_ERR_IO_ERROR;
  Report("am", s->name, size, st, am_len == size && memcmp(am_in, out, size) == 0);
  free(out);
  free(am_in);
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s TRANSPORT DEVICE_A DEVICE_B\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct side a = {.name = argv[2]}, b = {.name = argv[3]};
  if (Open(&a, argv[1], argv[2]) || Open(&b, argv[1], argv[3]) || Connect(&a, &b) ||
      Connect(&b, &a)) {
    return 1;
  }
  static const size_t kSizes[] = {8, 65536, 1 << 20};
  unsigned seed = 1;
  for (size_t i = 0; i < sizeof kSizes / sizeof kSizes[0]; ++i) {
    Tag(&a, &b, kSizes[i], seed++);
    Tag(&b, &a, kSizes[i], seed++);
    PutGet(&a, &b, kSizes[i], seed++);
    PutGet(&b, &a, kSizes[i], seed++);
    Am(&a, &b, kSizes[i], seed++);
    Am(&b, &a, kSizes[i], seed++);
  }
  ucp_request_param_t p = {0};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_EP_CLOSE_FLAG_FORCE;
  (void)Wait(&a, &b, ucp_ep_close_nbx(a.ep, &p));
  (void)Wait(&a, &b, ucp_ep_close_nbx(b.ep, &p));
  ucp_worker_destroy(a.worker);
  ucp_worker_destroy(b.worker);
  ucp_cleanup(a.context);
  ucp_cleanup(b.context);
  printf("%d failed\n", failures);
  return failures ? 1 : 0;
}
