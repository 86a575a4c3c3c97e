// The QP state machine table: every (type, from, to) pair is valid or invalid as IBTA
// 11.2.4.2 says, and for each valid transition the required mask passes, dropping any
// required bit fails, each optional bit is accepted and any other bit is refused.
#include "driver/qp_state/qp_state_machine.h"

#include <set>
#include <tuple>

#include "gtest/gtest.h"

namespace vrdma::driver {
namespace {

constexpr int kTypes[] = {IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD, kQpTypeGsi};
constexpr ibv_qp_state kStates[] = {IBV_QPS_RESET, IBV_QPS_INIT, IBV_QPS_RTR, IBV_QPS_RTS,
                                    IBV_QPS_SQD,   IBV_QPS_SQE,  IBV_QPS_ERR};
constexpr int kAllAttrs[] = {IBV_QP_CUR_STATE,
                             IBV_QP_EN_SQD_ASYNC_NOTIFY,
                             IBV_QP_ACCESS_FLAGS,
                             IBV_QP_PKEY_INDEX,
                             IBV_QP_PORT,
                             IBV_QP_QKEY,
                             IBV_QP_AV,
                             IBV_QP_PATH_MTU,
                             IBV_QP_TIMEOUT,
                             IBV_QP_RETRY_CNT,
                             IBV_QP_RNR_RETRY,
                             IBV_QP_RQ_PSN,
                             IBV_QP_MAX_QP_RD_ATOMIC,
                             IBV_QP_ALT_PATH,
                             IBV_QP_MIN_RNR_TIMER,
                             IBV_QP_SQ_PSN,
                             IBV_QP_MAX_DEST_RD_ATOMIC,
                             IBV_QP_PATH_MIG_STATE,
                             IBV_QP_CAP,
                             IBV_QP_DEST_QPN};

// Transitions that exist (IBTA 10.3.1 figure 132): any -> RESET and ERR, plus these.
std::set<std::tuple<ibv_qp_state, ibv_qp_state>> Edges(int type) {
  std::set<std::tuple<ibv_qp_state, ibv_qp_state>> e = {
      {IBV_QPS_RESET, IBV_QPS_INIT}, {IBV_QPS_INIT, IBV_QPS_INIT}, {IBV_QPS_INIT, IBV_QPS_RTR},
      {IBV_QPS_RTR, IBV_QPS_RTS},    {IBV_QPS_RTS, IBV_QPS_RTS},   {IBV_QPS_RTS, IBV_QPS_SQD},
      {IBV_QPS_SQD, IBV_QPS_RTS},    {IBV_QPS_SQD, IBV_QPS_SQD}};
  if (type != IBV_QPT_RC) e.insert({IBV_QPS_SQE, IBV_QPS_RTS});  // SQE: unreliable only
  for (ibv_qp_state s : kStates) {
    e.insert({s, IBV_QPS_RESET});
    e.insert({s, IBV_QPS_ERR});
  }
  return e;
}

TEST(QpStateMachineTest, TransitionTable) {
  for (int type : kTypes) {
    auto edges = Edges(type);
    for (ibv_qp_state from : kStates) {
      for (ibv_qp_state to : kStates) {
        QpTransitionRule rule = GetQpTransitionRule(type, from, to);
        EXPECT_EQ(rule.valid, edges.count({from, to}) == 1)
            << "type " << type << " " << QpStateName(from) << "->" << QpStateName(to);
        if (!rule.valid) {
          EXPECT_FALSE(CheckModifyQp(type, from, to, IBV_QP_STATE).ok());
          continue;
        }
        int mask = IBV_QP_STATE | rule.required;
        EXPECT_TRUE(CheckModifyQp(type, from, to, mask).ok())
            << QpStateName(from) << "->" << QpStateName(to);
        for (int bit : kAllAttrs) {
          absl::Status without = CheckModifyQp(type, from, to, mask & ~bit);
          absl::Status with = CheckModifyQp(type, from, to, mask | bit);
          if (rule.required & bit) {
            EXPECT_FALSE(without.ok()) << "required bit " << bit << " may be left out";
          } else if (rule.optional & bit) {
            EXPECT_TRUE(with.ok()) << "optional bit " << bit << ": " << with;
          } else {
            EXPECT_FALSE(with.ok())
                << "bit " << bit << " accepted on " << QpStateName(from) << "->" << QpStateName(to);
          }
        }
      }
    }
  }
}

TEST(QpStateMachineTest, RequiredAttributesFollowIbta) {
  // RESET -> INIT
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_RC, IBV_QPS_RESET, IBV_QPS_INIT).required,
            IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_UD, IBV_QPS_RESET, IBV_QPS_INIT).required,
            IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY);
  EXPECT_EQ(GetQpTransitionRule(kQpTypeGsi, IBV_QPS_RESET, IBV_QPS_INIT).required,
            IBV_QP_PKEY_INDEX | IBV_QP_QKEY);
  // INIT -> RTR
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_RC, IBV_QPS_INIT, IBV_QPS_RTR).required,
            IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_UC, IBV_QPS_INIT, IBV_QPS_RTR).required,
            IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN);
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_UD, IBV_QPS_INIT, IBV_QPS_RTR).required, 0);
  // RTR -> RTS
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_RC, IBV_QPS_RTR, IBV_QPS_RTS).required,
            IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                IBV_QP_MAX_QP_RD_ATOMIC);
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_UD, IBV_QPS_RTR, IBV_QPS_RTS).required, IBV_QP_SQ_PSN);
}

TEST(QpStateMachineTest, XrcHalvesTakeTheRequesterOrResponderAttributes) {
  // Linux's qp_state_table: the XRC send QP (XRC_INI) has RC's requester attributes and
  // none of the responder's, the XRC receive QP (XRC_TGT) the responder's and a timeout.
  constexpr int kPath = IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
  constexpr int kResponder = IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_XRC_SEND, IBV_QPS_INIT, IBV_QPS_RTR).required, kPath);
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_XRC_RECV, IBV_QPS_INIT, IBV_QPS_RTR).required,
            kPath | kResponder);
  EXPECT_FALSE(
      CheckModifyQp(IBV_QPT_XRC_SEND, IBV_QPS_INIT, IBV_QPS_RTR, IBV_QP_STATE | kPath | kResponder)
          .ok());
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_XRC_SEND, IBV_QPS_RTR, IBV_QPS_RTS).required,
            IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                IBV_QP_MAX_QP_RD_ATOMIC);
  EXPECT_EQ(GetQpTransitionRule(IBV_QPT_XRC_RECV, IBV_QPS_RTR, IBV_QPS_RTS).required,
            IBV_QP_TIMEOUT | IBV_QP_SQ_PSN);
  EXPECT_FALSE(CheckModifyQp(IBV_QPT_XRC_RECV, IBV_QPS_RTR, IBV_QPS_RTS,
                             IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_SQ_PSN | IBV_QP_RETRY_CNT)
                   .ok());
  // Reliable service has no send queue error state to leave.
  EXPECT_FALSE(GetQpTransitionRule(IBV_QPT_XRC_SEND, IBV_QPS_SQE, IBV_QPS_RTS).valid);
}

TEST(QpStateMachineTest, MaskWithoutStateIsAModifyInPlace) {
  // RTS -> RTS may change access flags on RC; RTR -> RTR does not exist.
  EXPECT_TRUE(CheckModifyQp(IBV_QPT_RC, IBV_QPS_RTS, IBV_QPS_RTS, IBV_QP_ACCESS_FLAGS).ok());
  EXPECT_FALSE(CheckModifyQp(IBV_QPT_RC, IBV_QPS_RTR, IBV_QPS_RTS, IBV_QP_ACCESS_FLAGS).ok());
  EXPECT_FALSE(CheckModifyQp(IBV_QPT_RC, IBV_QPS_RTS, IBV_QPS_RTS, IBV_QP_DEST_QPN).ok());
}

TEST(QpStateMachineTest, RawPacketQpTakesAPortOnly) {
  // Linux's ib_modify_qp_is_ok: RESET -> INIT needs the port; RTR and RTS need nothing;
  // no SQD or SQE.
  EXPECT_FALSE(CheckModifyQp(IBV_QPT_RAW_PACKET, IBV_QPS_RESET, IBV_QPS_INIT, IBV_QP_STATE).ok());
  EXPECT_TRUE(
      CheckModifyQp(IBV_QPT_RAW_PACKET, IBV_QPS_RESET, IBV_QPS_INIT, IBV_QP_STATE | IBV_QP_PORT)
          .ok());
  EXPECT_FALSE(CheckModifyQp(IBV_QPT_RAW_PACKET, IBV_QPS_RESET, IBV_QPS_INIT,
                             IBV_QP_STATE | IBV_QP_PORT | IBV_QP_QKEY)
                   .ok());
  EXPECT_TRUE(CheckModifyQp(IBV_QPT_RAW_PACKET, IBV_QPS_INIT, IBV_QPS_RTR, IBV_QP_STATE).ok());
  EXPECT_TRUE(CheckModifyQp(IBV_QPT_RAW_PACKET, IBV_QPS_RTR, IBV_QPS_RTS, IBV_QP_STATE).ok());
  EXPECT_FALSE(
      CheckModifyQp(IBV_QPT_RAW_PACKET, IBV_QPS_RTR, IBV_QPS_RTS, IBV_QP_STATE | IBV_QP_SQ_PSN)
          .ok());
  EXPECT_FALSE(GetQpTransitionRule(IBV_QPT_RAW_PACKET, IBV_QPS_RTS, IBV_QPS_SQD).valid);
}

TEST(QpStateMachineTest, UnknownTypeIsRejected) {
  EXPECT_FALSE(GetQpTransitionRule(IBV_QPT_DRIVER, IBV_QPS_RESET, IBV_QPS_INIT).valid);
  absl::Status st = CheckModifyQp(IBV_QPT_RC, IBV_QPS_RESET, IBV_QPS_RTS, IBV_QP_STATE);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("RESET -> RTS"), std::string::npos) << st;
}

}  // namespace
}  // namespace vrdma::driver
