/*
 * vrdma: the public C API of virtual RDMA devices.
 *
 * The calls of the talk "Virtual RDMA devices" (ibv_create_virtual_ibdev,
 * ibv_destroy_virtual_ibdev, ibv_provision_resources, ib_get_device_type) with userspace
 * types: a device is a libibverbs struct ibv_device from ibv_get_device_list(), on which
 * vrdmad lists its virtual devices (vdevs) first and then the physical devices (pdevs)
 * they are carved from.
 *
 * Link with -lvrdma (before -libverbs), or run under vrdma-run, which preloads the same
 * library. The calls talk to vrdmad over its control socket ($VRDMA_SOCKET, default
 * /run/vrdma/vrdmad.sock). Creating, provisioning and destroying need root or
 * CAP_NET_ADMIN; ibv_get_device_type needs nothing.
 *
 * Errors: the calls that return int return 0, or an errno value (also left in errno), as
 * ibv_modify_qp does; vrdma_last_error() then has the daemon's message for this thread.
 */
#ifndef VRDMA_VRDMA_H
#define VRDMA_VRDMA_H

#include <infiniband/verbs.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ibv_device_type {
  IBV_DEVICE_TYPE_UNKNOWN = 0,  /* not a vrdma device (e.g. a kernel device) */
  IBV_DEVICE_TYPE_PHYSICAL = 1, /* a pdev: the device vdevs are carved from */
  IBV_DEVICE_TYPE_VIRTUAL = 2,  /* a vdev: bound to one netdev, provisioned */
};

/* Whether @dev (from ibv_get_device_list) is a virtual or a physical vrdma device. */
enum ibv_device_type ibv_get_device_type(struct ibv_device* dev);

/*
 * Creates the virtual device @new_ibdev_name on the physical device @pdev, bound to the
 * network interface @netdev_name (in vrdmad's network namespace). Its GID table mirrors
 * the interface's MAC and addresses as the kernel builds RoCE GID tables; its quotas
 * start at the pdev's limits. Call ibv_get_device_list() again to see it.
 *
 * Errors: EINVAL (bad name, @pdev not physical), ENODEV (no such interface or pdev),
 * EEXIST (name taken, or interface already bound), ENOSPC (the pdev has its maximum of
 * vdevs), EPERM (not privileged), ECONNREFUSED/ENOENT (no daemon).
 */
int ibv_create_virtual_ibdev(struct ibv_device* pdev, const char* netdev_name,
                             const char* new_ibdev_name);

/*
 * Destroys a virtual device. Contexts open on it get IBV_EVENT_DEVICE_FATAL, their
 * objects are freed and further calls on them fail with EIO.
 * Errors: ENODEV (no vdev of that name; a pdev is not one), EPERM.
 */
int ibv_destroy_virtual_ibdev(const char* virtual_ibdev_name);

/* Which fields of struct ibv_resource_config to apply. */
enum ibv_resource_config_mask {
  IBV_RESOURCE_CONFIG_QP = 1 << 0,
  IBV_RESOURCE_CONFIG_CQ = 1 << 1,
  IBV_RESOURCE_CONFIG_MR = 1 << 2,
  IBV_RESOURCE_CONFIG_PD = 1 << 3,
  IBV_RESOURCE_CONFIG_SRQ = 1 << 4,
  IBV_RESOURCE_CONFIG_AH = 1 << 5,
  IBV_RESOURCE_CONFIG_MR_BYTES = 1 << 6,
};

/* Quotas of a virtual device: how many objects of each kind, and registered bytes. */
struct ibv_resource_config {
  uint32_t mask; /* enum ibv_resource_config_mask: the fields to set */
  uint32_t max_qp;
  uint32_t max_cq;
  uint32_t max_mr;
  uint32_t max_pd;
  uint32_t max_srq;
  uint32_t max_ah;
  uint32_t reserved;
  uint64_t max_mr_bytes;
};

/*
 * Sets the quotas of the virtual device @vdev, live: creation beyond a quota fails with
 * ENOMEM, and ibv_query_device() on the vdev reports them. All fields in the mask are
 * applied, or none.
 * Errors: EBUSY (a quota below what is in use), ERANGE (above the pdev's limit), EINVAL
 * (unknown mask bits, @vdev not virtual), ENODEV (the vdev is gone), EPERM.
 */
int ibv_provision_resources(struct ibv_device* vdev, const struct ibv_resource_config* resources);

/* The daemon's message for the last failed call of this thread ("" after a success). */
const char* vrdma_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* VRDMA_VRDMA_H */
