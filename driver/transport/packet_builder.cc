// Frames the engine sends: header templates per path, mbuf allocation, sealing.
#include <cstring>

#include "driver/transport/device.h"

namespace vrdma {

bool Device::BuildTemplate(QueuePair& qp, const AddressVector& av, wire::RocePacket* out) {
  const GidEntry* sgid = GetGid(av.sgid_index);
  if (!sgid) return false;
  wire::RocePacket t{};
  t.eth.dst = av.dmac;
  t.eth.src = sgid->mac;
  t.eth.has_vlan = sgid->has_vlan;
  // PCP from the service level, as RoCE maps SL to the 802.1Q priority.
  t.eth.vlan_tci = static_cast<uint16_t>(((av.sl & 7) << 13) | (sgid->vlan_id & 0xfff));
  t.net.type = sgid->type;
  t.net.sgid = sgid->gid;
  t.net.dgid = av.dgid;
  t.net.traffic_class = av.traffic_class;
  t.net.hop_limit = av.hop_limit ? av.hop_limit : 64;
  uint32_t flow = av.flow_label;
  if (flow == 0 && (qp.type == IBV_QPT_RC || qp.type == IBV_QPT_UC)) {
    flow = wire::FlowLabelFromQpns(qp.qpn, qp.dest_qpn);
  }
  t.net.flow_label = flow & 0xfffff;
  t.net.udp_src_port = wire::UdpSourcePort(flow);
  t.bth.pkey = qp.pkey;
  t.bth.dest_qp = qp.dest_qpn;
  *out = t;
  return true;
}

rte_mbuf* Device::NewPacket(wire::RocePacket* hdr, uint32_t payload_len, uint8_t** payload) {
  rte_mbuf* m = rte_pktmbuf_alloc(cfg_.pool);
  if (!m) {
    counters_.tx_dropped++;
    return nullptr;
  }
  uint8_t* buf = rte_pktmbuf_mtod(m, uint8_t*);
  uint32_t off = wire::EncodeHeaders(hdr, payload_len, buf, rte_pktmbuf_tailroom(m));
  if (off == 0) {
    rte_pktmbuf_free(m);
    counters_.tx_dropped++;
    return nullptr;
  }
  m->data_len = static_cast<uint16_t>(hdr->frame_len);
  m->pkt_len = hdr->frame_len;
  *payload = buf + off;
  return m;
}

void Device::SendPacket(rte_mbuf* m, const wire::RocePacket& hdr) {
  // `hdr` holds the offsets NewPacket laid the frame out with.
  wire::SealFrame(rte_pktmbuf_mtod(m, uint8_t*), hdr, !cfg_.icrc_offload);
  Transmit(m);
}

}  // namespace vrdma
