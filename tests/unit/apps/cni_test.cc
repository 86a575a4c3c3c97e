// apps/vrdma-cni/cni.cc without a daemon: VERSION, the vdev's name, and the
// specification's errors for what a runtime may pass wrong (SPEC.md, "Error").
#include "apps/vrdma-cni/cni.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace vrdma::cni {
namespace {

using nlohmann::json;

std::map<std::string, std::string> Env(const std::string& command) {
  return {{"CNI_COMMAND", command},
          {"CNI_CONTAINERID", "0123456789abcdef0123"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_NETNS", "/run/netns/none"}};
}
const std::string kConf =
    R"({"cniVersion":"1.0.0","name":"n","type":"vrdma","socket":"/nonexistent/vrdmad.sock"})";

int CodeOf(const Outcome& o) {
  EXPECT_EQ(o.exit_code, 1);
  json j = json::parse(o.output, nullptr, false);
  return j.is_object() ? j.value("code", -1) : -1;
}

TEST(Cni, VersionListsTheSpecsItSpeaks) {
  Outcome o = cni::Run(Env("VERSION"), "");
  EXPECT_EQ(o.exit_code, 0);
  json j = json::parse(o.output);
  EXPECT_EQ(j["supportedVersions"], json({"0.3.0", "0.3.1", "0.4.0", "1.0.0"}));
}

TEST(Cni, DeviceNameFromContainerAndInterface) {
  EXPECT_EQ(DeviceName("vrdma-", "0123456789abcdef0123", "eth0"), "vrdma-0123456789ab-eth0");
}

TEST(Cni, ErrorsOfTheSpecification) {
  EXPECT_EQ(CodeOf(cni::Run(Env("ADD"), "{not json")), 6);  // decoding failure
  EXPECT_EQ(CodeOf(cni::Run(Env("ADD"), R"({"cniVersion":"1.1.0","name":"n","type":"vrdma"})")), 1);
  EXPECT_EQ(CodeOf(cni::Run(Env("FROB"), kConf)), 4);  // invalid environment
  auto no_id = Env("ADD");
  no_id.erase("CNI_CONTAINERID");
  EXPECT_EQ(CodeOf(cni::Run(no_id, kConf)), 4);
  EXPECT_EQ(CodeOf(cni::Run(Env("ADD"), R"({"cniVersion":"1.0.0","name":"n","pdev":7})")), 7);
  EXPECT_EQ(
      CodeOf(cni::Run(Env("ADD"), R"({"cniVersion":"1.0.0","name":"n","name_prefix":"a/b"})")),
      7);  // not a device name
  // No daemon: try again later, for ADD and for DEL alike.
  EXPECT_EQ(CodeOf(cni::Run(Env("ADD"), kConf)), 11);
  EXPECT_EQ(CodeOf(cni::Run(Env("DEL"), kConf)), 11);
}

}  // namespace
}  // namespace vrdma::cni
