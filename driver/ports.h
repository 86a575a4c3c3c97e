// The second face of driver/: building the port a RoceDevice runs on. What it offers:
//
//  - PacketPort, the burst rx/tx interface every port implements;
//  - the ports: EthdevPort (a DPDK ethdev opened by vfio/), LoopbackPort (the internal
//    switch of one device), ExceptionPort and IsRoceFrame (RoCE to the engine, the rest
//    to a kernel TAP; ExceptionCounters), FaultPort with its FaultConfig (loss,
//    duplicates, reordering, corruption on a real port);
//  - packet pools: CreatePacketPool, CreatePagePacketPool, PagePoolDataRoom,
//    kFrameDataRoom, kMaxRoceOverhead;
//  - capture: PcapWriter (a pcap file) and PcapPort (records what crosses a port).
//
// With driver/device.h, all code outside driver/ needs to bring up a device on a port.
#pragma once

#include "driver/pcap/pcap_port.h"
#include "driver/pcap/pcap_writer.h"
#include "driver/port/ethdev_port.h"
#include "driver/port/exception_port.h"
#include "driver/port/fault_port.h"
#include "driver/port/loopback_port.h"
#include "driver/port/packet_pool.h"
#include "driver/port/packet_port.h"
