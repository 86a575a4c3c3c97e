// The daemon's plug-in points: what the layers wire into vrdmad's event loop
// (apps/vrdmad/main.cc does the wiring; docs/architecture.md says where a new one goes).
//
//  - A RequestHandler answers the requests of one range of operations (proto::Op) on
//    any client connection: vdev/'s verbs and admin requests today, the connection
//    manager's later. The server routes by range and sends the reply. A request that
//    waits for something outside the daemon (a neighbour to resolve) is answered later:
//    the handler says kReplyLater, and the server asks it again on its passes while that
//    client alone waits.
//  - A Poller is run on every pass of the loop: the engines of the pdevs today, the
//    shared QP1 of each port later. The loop sleeps only when every poller is idle.
//
// Everything runs on the loop's one thread: no locks. A handler or poller must never
// block, and never on a descriptor a client shares.
#pragma once

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vdev/protocol/channel.h"
#include "vdev/reply.h"

namespace vrdma::vdev {

class Session;
struct Pdev;
struct Vdev;

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Answers one request of `client` into *reply (status 0 or an errno, payload, fds).
  virtual void Handle(Session& client, proto::Message& msg, Reply* reply) = 0;
  // After Handle said kReplyLater: called on the loop's passes (at least every
  // millisecond) until it returns true with *reply filled. It must not block. No further
  // request of `client` is read meanwhile (clients send one at a time); if the client
  // goes away first, OnClose comes instead and Resume is never called again for it.
  virtual bool Resume(Session& /*client*/, uint64_t /*now_ns*/, Reply* reply) {
    reply->status = EIO;
    return true;
  }
  // `client`'s connection is closing: forget it (its Session is freed next).
  virtual void OnClose(Session& /*client*/) {}
};

class Poller {
 public:
  virtual ~Poller() = default;
  // One pass at time `now_ns` (CLOCK_MONOTONIC). Returns the work done (0 = idle).
  virtual int Poll(uint64_t now_ns) = 0;
  // True while it must be polled again within about a millisecond (timers armed,
  // frames queued) even when nothing wakes the loop.
  virtual bool HasPendingWork() const { return false; }
  // Called with true before the loop sleeps and false when it wakes: a poller whose
  // sources can signal (a port's wake-up descriptor) arms them for the sleep.
  virtual void ArmWake(bool /*armed*/) {}
  // Descriptors that become readable when the poller has work while the loop sleeps.
  virtual void WakeFds(std::vector<int>* /*out*/) const {}
  // Work can arrive without a descriptor to wake the loop: sleep in short ticks.
  virtual bool NeedsTick() const { return false; }
};

// A layer above vdev/ that lists objects of its own for `vrdmactl res show TYPE`: cm/'s
// RDMA-CM IDs for `res show cm_id`, as iproute2's `rdma res show cm_id` lists the
// kernel's. The admin command filters them by what the requester may see (the vdev, the
// owning client) and prints them as it prints verbs objects.
struct ReportedField {
  std::string key;
  std::string value;    // as printed
  bool number = false;  // JSON: a number, not a string
};
struct ReportedObject {
  const Vdev* vdev = nullptr;      // null: on no device (bound to the wildcard address)
  const Session* owner = nullptr;  // the client connection that holds it
  std::vector<ReportedField> fields;
  // The object's entry as RDMA netlink reports it (`rdma res show TYPE`,
  // vdev/nldev/nldev.h): its attributes in the kernel's format, without the owner's PID
  // (added for the requester's PID namespace). Empty: not reported there.
  std::vector<uint8_t> nldev_attrs;
};
class ObjectReporter {
 public:
  virtual ~ObjectReporter() = default;
  virtual std::string_view type() const = 0;
  virtual void Report(std::vector<ReportedObject>* out) const = 0;
};

// A layer above vdev/ that counts things of its own per device for `vrdmactl stat show`:
// cm/'s MADs by type, retries and drops per vdev, and its QP1's per pdev. Each device with
// counters gets a row of its own, named by kind() ("cm dev NAME: ...", "cm pdev NAME:
// ..."), shown to whoever may see that device.
using CounterList = std::vector<std::pair<std::string, uint64_t>>;
class CounterReporter {
 public:
  virtual ~CounterReporter() = default;
  virtual std::string_view kind() const = 0;
  // Appends the device's counters; none appended: no row.
  virtual void VdevCounters(const Vdev& v, CounterList* out) const = 0;
  virtual void PdevCounters(const Pdev& p, CounterList* out) const = 0;
};

}  // namespace vrdma::vdev
