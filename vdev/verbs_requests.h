// The verbs requests of a client context (proto::Op kListDevices .. kLastVerbsOp): each
// goes to the context's Session, whose table names the handler (session.cc).
#pragma once

#include "vdev/plugins.h"
#include "vdev/session.h"

namespace vrdma::vdev {

class VerbsRequests : public RequestHandler {
 public:
  void Handle(Session& client, proto::Message& msg, Reply* reply) override {
    client.HandleVerbs(msg, reply);
  }
  bool Resume(Session& client, uint64_t now_ns, Reply* reply) override {
    return client.ResumeVerbs(now_ns, reply);
  }
};

}  // namespace vrdma::vdev
