// The face of driver/: the one header code outside driver/ (vdev/, qp1/, cm/, apps/)
// includes to use the physical RDMA device. What it offers:
//
//  - the device: RoceDevice (verbs on PDs, MRs, CQs, SRQs, AHs and QPs; posting; the port
//    GID table; async events; the engine loop Poll/HasPendingWork/Receive), RoceDeviceConfig,
//    DeviceLimits (and kMaxSgePerWqe, kMaxInlineData), DeviceCounters, MrKeys,
//    AsyncEvent, SendCompletionOpcode;
//  - what the verbs take and give: QpInitAttr, QueuePair (read-only through FindQp),
//    kQpTypeGsi and kGsiQkey (the shared QP1), SendWr, RecvWr, Sge, AddressVector,
//    GidEntry, MemoryRegion (through FindMr);
//  - completions: CompletionSink (a consumer outside the engine, such as a client's CQ
//    ring) and RecvInfo (where a received packet arrived: GID index, RoCE version, VLAN,
//    source MAC; from RoceDevice::PollCq or CompletionSink::Deliver);
//  - wire names the verbs use: wire::Gid, wire::MacAddr, wire::NetworkType and the
//    Ethernet/RoCE constants of driver/wire/headers.h;
//  - PacketPort, the interface a RoceDeviceConfig's port implements (the ports themselves,
//    pools and pcap are in driver/ports.h);
//  - fault_guard (driver/res/fault_guard.h): the SIGBUS guard over client memory, whose
//    ranges the layer that maps client memory adds, and whose handler the daemon installs.
//
// Everything under driver/transport, driver/res and driver/wire is the engine's own:
// outside driver/, name only this header (and driver/ports.h).
#pragma once

#include "driver/port/packet_port.h"
#include "driver/qp_state/qp_state_machine.h"
#include "driver/res/completion_queue.h"
#include "driver/res/fault_guard.h"
#include "driver/res/limits.h"
#include "driver/res/memory_region.h"
#include "driver/res/recv_info.h"
#include "driver/res/work_request.h"
#include "driver/transport/counters.h"
#include "driver/transport/device.h"
#include "driver/transport/qp.h"
#include "driver/wire/headers.h"
