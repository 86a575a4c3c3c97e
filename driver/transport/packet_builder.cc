// Frames the engine sends: header templates per path, mbuf allocation, sealing.
#include <algorithm>
#include <cstring>

#include "driver/transport/device.h"

namespace vrdma::driver {

bool RoceDevice::BuildTemplate(QueuePair& qp, const AddressVector& av, wire::RocePacket* out) {
  uint32_t flow = av.flow_label;
  if (flow == 0 && IsConnected(qp.type)) {
    flow = wire::FlowLabelFromQpns(qp.qpn, qp.dest_qpn);
  }
  if (!BuildPath(av, flow, out)) return false;
  out->bth.pkey = qp.pkey;
  out->bth.dest_qp = qp.dest_qpn;
  return true;
}

bool RoceDevice::BuildPath(const AddressVector& av, uint32_t flow, wire::RocePacket* out) {
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
  t.net.flow_label = flow & 0xfffff;
  t.net.udp_src_port = wire::UdpSourcePort(flow);
  *out = t;
  return true;
}

const AddressHandle* RoceDevice::DatagramPath(uint32_t handle) {
  AddressHandle* ah = ahs_.Get(handle);
  if (!ah || ah->epoch == path_epoch_) return ah;
  // A datagram's flow label is the AH's as given (none derives from two QPNs, as for a
  // connection); P_Key and DestQP are set per datagram.
  ah->path_ok = BuildPath(ah->av, ah->av.flow_label, &ah->path);
  ah->local = ah->path_ok && FindDestination(ah->path, &ah->dest);
  ah->epoch = path_epoch_;
  return ah;
}

rte_mbuf* RoceDevice::NewPacket(wire::RocePacket* hdr, uint32_t payload_len, uint8_t** payload) {
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

void RoceDevice::SendPacket(rte_mbuf* m, const wire::RocePacket& hdr) {
  // `hdr` holds the offsets NewPacket laid the frame out with.
  wire::SealFrame(rte_pktmbuf_mtod(m, uint8_t*), hdr, !cfg_.icrc_offload);
  Transmit(m);
}

bool RoceDevice::UseZeroCopy(const wire::RocePacket& hdr, uint32_t len,
                             const rte_mbuf_ext_shared_info* share) const {
  // Frames the device turns around to another vdev are parsed in place: they stay whole.
  return tx_chains_ && share && len >= cfg_.zero_copy_min &&
         !(cfg_.hairpin && IsLocalMac(hdr.eth.dst.data()));
}

const uint8_t* RoceDevice::ZeroCopySource(const QueuePair& qp, const Sge* sges, uint32_t nsge,
                                          uint32_t offset, uint32_t len,
                                          rte_mbuf_ext_shared_info** share,
                                          const MemoryRegion** mr_out) {
  for (uint32_t i = 0; i < nsge; ++i) {
    if (offset >= sges[i].length) {
      offset -= sges[i].length;
      continue;
    }
    if (sges[i].length - offset < len) return nullptr;  // spans SGEs: gathered by copy
    const MemoryRegion* mr = FindMr(sges[i].lkey);
    if (!mr || mr->pd != qp.pd || mr->poisoned || !mr->tx_share) return nullptr;
    *share = mr->tx_share;
    *mr_out = mr;
    return TranslateMr(*mr, sges[i].addr + offset, len);
  }
  return nullptr;
}

rte_mbuf* RoceDevice::NewZeroCopyPacket(wire::RocePacket* hdr, const uint8_t* payload, uint32_t len,
                                        rte_mbuf_ext_shared_info* share) {
  // Client memory is 4 KiB pages whose IOVAs (= the daemon's addresses) are contiguous
  // but whose pages are not: each external segment stays inside one page, as a device
  // reading it through an IOMMU may take each segment as one physical run (QEMU's
  // e1000e drops a fragment that is not). A payload of at most one page needs two.
  constexpr uintptr_t kPage = 4096;
  uint8_t* src = const_cast<uint8_t*>(payload);
  const uint32_t first = static_cast<uint32_t>(
      std::min<uintptr_t>(len, kPage - (reinterpret_cast<uintptr_t>(src) & (kPage - 1))));
  const uint32_t nseg = first < len ? 4 : 3;
  rte_mbuf* m[4];
  if (rte_pktmbuf_alloc_bulk(cfg_.pool, m, nseg) != 0) {
    counters_.tx_dropped++;
    return nullptr;
  }
  uint8_t* buf = rte_pktmbuf_mtod(m[0], uint8_t*);
  uint32_t off = wire::EncodeHeaders(hdr, len, buf, rte_pktmbuf_tailroom(m[0]));
  if (off == 0) {
    for (uint32_t i = 0; i < nseg; ++i) rte_pktmbuf_free(m[i]);
    counters_.tx_dropped++;
    return nullptr;
  }
  m[0]->data_len = static_cast<uint16_t>(off);
  // The payload: external buffers over the client's bytes, their IOVA their address
  // (ports that DMA have the MR mapped with IOVA = VA). Each holds a reference to the
  // MR's memory, which the port's free gives back.
  uint32_t done = 0;
  for (uint32_t i = 1; i + 1 < nseg; ++i) {
    uint32_t n = i == 1 ? first : len - first;
    rte_mbuf_ext_refcnt_update(share, 1);
    rte_pktmbuf_attach_extbuf(m[i], src + done, reinterpret_cast<uintptr_t>(src + done),
                              static_cast<uint16_t>(n), share);
    m[i]->data_len = static_cast<uint16_t>(n);
    done += n;
  }
  rte_mbuf* tail = m[nseg - 1];
  tail->data_len = static_cast<uint16_t>(hdr->frame_len - off - len);  // pad + ICRC
  wire::SealFrameGather(buf, off, payload, len, rte_pktmbuf_mtod(tail, uint8_t*), *hdr,
                        !cfg_.icrc_offload);
  if (cfg_.icrc_offload) {
    // No ICRC read the payload: a load from each page it spans (its first and last byte:
    // it is at most a page long) makes a page that vanished fault here, where the
    // caller's LostPage sees it before the frame leaves, not later under the receiving
    // QP's copy (internal switch) or the port's.
    (void)*static_cast<const volatile uint8_t*>(payload);
    (void)*static_cast<const volatile uint8_t*>(payload + len - 1);
  }
  for (uint32_t i = 0; i + 1 < nseg; ++i) m[i]->next = m[i + 1];
  m[0]->nb_segs = static_cast<uint16_t>(nseg);
  m[0]->pkt_len = hdr->frame_len;
  counters_.tx_zero_copy++;
  return m[0];
}

}  // namespace vrdma::driver
