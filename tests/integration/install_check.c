/* A program of an installed vrdma's user: built with only
 *   cc install_check.c $(pkg-config --cflags --libs vrdma)
 * (tests/integration/install.sh). Uses the public C API of <vrdma/vrdma.h> against a
 * running vrdmad: the embedded pdev0 is physical, a vdev created on NETDEV is virtual
 * and takes a quota, and is destroyed. Prints one line per step; exit 0 when all held.
 *
 * Usage: install_check NETDEV  (an interface in vrdmad's namespace with no vdev on it) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <vrdma/vrdma.h>

static const char* kVdev = "vdev_inst";

/* The device `name` in a fresh list (*list to be freed), or NULL. */
static struct ibv_device* find(struct ibv_device*** list, const char* name) {
  *list = ibv_get_device_list(NULL);
  for (int i = 0; *list && (*list)[i]; ++i) {
    if (strcmp(ibv_get_device_name((*list)[i]), name) == 0) return (*list)[i];
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s NETDEV\n", argv[0]);
    return 2;
  }
  struct ibv_device** list;
  struct ibv_device* pdev = find(&list, "pdev0");
  if (!pdev || ibv_get_device_type(pdev) != IBV_DEVICE_TYPE_PHYSICAL) {
    printf("pdev0: not found as a physical device\n");
    return 1;
  }
  printf("pdev0: physical\n");
  int rc = ibv_create_virtual_ibdev(pdev, argv[1], kVdev);
  ibv_free_device_list(list);
  if (rc != 0) {
    printf("%s: create failed: %s (%s)\n", kVdev, strerror(rc), vrdma_last_error());
    return 1;
  }
  struct ibv_device* vdev = find(&list, kVdev);
  if (!vdev || ibv_get_device_type(vdev) != IBV_DEVICE_TYPE_VIRTUAL) {
    printf("%s: not found as a virtual device\n", kVdev);
    return 1;
  }
  printf("%s: virtual on %s\n", kVdev, argv[1]);
  struct ibv_resource_config quota = {.mask = IBV_RESOURCE_CONFIG_QP, .max_qp = 4};
  rc = ibv_provision_resources(vdev, &quota);
  struct ibv_context* ctx = rc == 0 ? ibv_open_device(vdev) : NULL;
  struct ibv_device_attr attr;
  if (!ctx || ibv_query_device(ctx, &attr) != 0) {
    printf("%s: provision/query failed: %s (%s)\n", kVdev, strerror(rc ? rc : errno),
           vrdma_last_error());
    return 1;
  }
  printf("%s: max_qp %d\n", kVdev, attr.max_qp);
  ibv_close_device(ctx);
  ibv_free_device_list(list);
  rc = ibv_destroy_virtual_ibdev(kVdev);
  int again = ibv_destroy_virtual_ibdev(kVdev);
  if (rc != 0 || again != ENODEV || vrdma_last_error()[0] == 0) {
    printf("%s: destroy: %d, again: %d (%s)\n", kVdev, rc, again, vrdma_last_error());
    return 1;
  }
  printf("%s: destroyed (again: %s)\n", kVdev, strerror(again));
  return 0;
}
