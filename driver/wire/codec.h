// RoCE frame codec: parse a received Ethernet frame into RocePacket with every length
// and field checked, and lay out / seal a frame to send.
#pragma once

#include <cstdint>

#include "driver/wire/headers.h"

namespace vrdma::driver::wire {

// Why a received frame was not handed to the transport. Each is counted by the port.
enum class DropReason : uint8_t {
  kNone = 0,
  kNotRoce,            // not RoCE at all (ARP, TCP, other UDP port ...): not ours
  kTruncated,          // frame shorter than the headers it announces
  kBadVlan,            // stacked VLAN tags (QinQ) are not supported
  kBadIpVersion,       // IP version nibble does not match the ethertype
  kBadIpHeader,        // IPv4 IHL != 5 (options), or bad GRH IPVer / NxtHdr
  kBadIpChecksum,      // IPv4 header checksum
  kIpFragment,         // IPv4 MF set or fragment offset != 0
  kBadLength,          // IP/GRH payload length or UDP length inconsistent with the frame
  kBadTver,            // BTH TVer != 0
  kUnsupportedOpcode,  // reserved, RD or CNP opcode
  kBadPad,             // pad count larger than the payload, or pad on a no-payload opcode
  kUnexpectedPayload,  // payload on an opcode that carries none (ACK, READ request ...)
  kBadIcrc,
  kCount,
};

const char* DropReasonName(DropReason reason);

struct ParseOptions {
  bool verify_icrc = true;
  // A detached frame: `frame[0, len)` holds its headers, up to the payload; the payload,
  // pad and ICRC (`detached_len` bytes) are at `detached` and are not read, nor is the
  // ICRC verified. The device's own zero-copy frames, turned around inside it, come so.
  const uint8_t* detached = nullptr;
  uint32_t detached_len = 0;
};

// Parses `frame[0, len)`. On kNone `out` holds every header and `out->payload` points
// into `frame` (or is `options.detached`). Never reads outside the frame, whatever its
// contents.
DropReason ParseFrame(const uint8_t* frame, uint32_t len, RocePacket* out,
                      ParseOptions options = {});

// Bytes of headers before the payload for this packet's network type, VLAN and opcode.
uint32_t HeaderLength(const RocePacket& pkt);

// Writes every header of `pkt` (Ethernet, VLAN, GRH/IP, UDP, BTH, extended headers)
// into `buf` for a payload of `payload_len` bytes: sets IP/UDP lengths and BTH PadCnt
// (pkt.bth.pad is ignored and recomputed). Fills pkt->l3_off, bth_off, frame_len,
// payload_len. Returns the payload offset, or 0 if the frame would not fit in `cap`.
uint32_t EncodeHeaders(RocePacket* pkt, uint32_t payload_len, uint8_t* buf, uint32_t cap);

// The 40 bytes a UD receive buffer starts with for a datagram `pkt` with `payload_len`
// bytes of payload, as if its frame had been received: the GRH (RoCEv1), the IPv6 header
// (RoCEv2/IPv6), or 20 zero bytes then the IPv4 header with its checksum (RoCEv2/IPv4, as
// Linux and mlx5 lay it out). False if such a frame could not exist (too long).
bool EncodeReceiveGrh(const RocePacket& pkt, uint32_t payload_len, uint8_t* grh);

// After the payload is in place: zeroes the pad bytes, writes the IPv4 header checksum
// and the ICRC at the end of the frame (0 without `with_icrc`: a port that computes the
// ICRC itself, as a NIC's offload does, fills it).
void SealFrame(uint8_t* buf, const RocePacket& pkt, bool with_icrc = true);
// SealFrame for a frame in three pieces: the headers EncodeHeaders laid out (hdr, up to
// the payload offset it returned), the payload elsewhere, and `tail` for the pad bytes
// and the ICRC (pkt.bth.pad + 4 bytes).
void SealFrameGather(uint8_t* hdr, uint32_t hdr_len, const uint8_t* payload, uint32_t payload_len,
                     uint8_t* tail, const RocePacket& pkt, bool with_icrc = true);

// UDP source port for a RoCEv2 flow, from its 20-bit flow label, as Linux computes it
// (rdma_flow_label_to_udp_sport): folds the label into the range 0xC000..0xFFFF.
uint16_t UdpSourcePort(uint32_t flow_label);

// Flow label Linux derives from the two QP numbers of a connection
// (rdma_calc_flow_label) when the application gives none.
uint32_t FlowLabelFromQpns(uint32_t lqpn, uint32_t rqpn);

// IPv4 header checksum (RFC 1071) over `len` bytes.
uint16_t Ipv4HeaderChecksum(const uint8_t* hdr, uint32_t len);

}  // namespace vrdma::driver::wire
