// What a device reports of itself (ibv_query_device, ibv_query_port, the GID table), for
// a vdev (its own provisioning, its interface's state and addresses) or a pdev (the whole
// device; its internal port has no interface): one answer whether a context asks
// (session_device.cc) or a client describes the device without opening it (the sysfs view
// of vrdma-run, proto::Op::kDescribeDevice).
#pragma once

#include <infiniband/verbs.h>

#include "vdev/pdev.h"
#include "vdev/plugins.h"
#include "vdev/protocol/protocol.h"
#include "vdev/vdev.h"

namespace vrdma::vdev {

// Exactly one of `vdev` and `pdev` is set.
// The device list's entry (kListDevices, and the head of kDescribeDevice's answer).
proto::DeviceRecord DeviceRecordOf(const Vdev* vdev, const Pdev* pdev);
void DeviceAttrOf(const Vdev* vdev, const Pdev* pdev, ibv_device_attr* out);
void PortAttrOf(const Vdev* vdev, const Pdev* pdev, ibv_port_attr* out);
void GidTableOf(const Vdev* vdev, proto::QueryGidTableReply* out);
// The vdev's counters in proto::kDeviceCounterNames' order (`vrdmactl stat show`).
void CountersOf(const Vdev& vdev, uint64_t (&out)[proto::kDeviceCounterNames.size()]);
// The counters `vrdmactl stat show` and `rdma statistic show` print: a vdev's (CountersOf,
// named), a pdev's (its engine's packets, drops and retransmits, its exception path's).
CounterList VdevCounters(const Vdev& vdev);
CounterList PdevCounters(const Pdev& pdev);

}  // namespace vrdma::vdev
