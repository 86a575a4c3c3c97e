// Test support for the wire codec: sample packets, frames built with the codec, and
// reference CRC/ICRC implementations written independently of the library (bitwise CRC,
// pseudo-packet assembled byte by byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <vector>

#include "driver/wire/codec.h"
#include "driver/wire/headers.h"

namespace vrdma::driver::wire {
// Lets GoogleTest print NetworkType parameters by name.
void PrintTo(NetworkType type, std::ostream* os);
}  // namespace vrdma::driver::wire

namespace vrdma::driver::wire::testing {

// CRC-32 one bit at a time (reflected 0xEDB88320), raw state like Crc32Update.
uint32_t ReferenceCrc32(uint32_t state, const uint8_t* data, size_t len);

// ICRC of a whole frame (Ethernet first, optional 802.1Q tag) following IBTA 7.8.1 and
// annexes A16 / A17.8, computed without the library.
uint32_t ReferenceIcrc(const std::vector<uint8_t>& frame);

// Every opcode the transport implements (GetOpcodeInfo(op).valid).
std::vector<uint8_t> ValidOpcodes();

// A packet with every header field set to a distinct, non-default value.
RocePacket SamplePacket(NetworkType type, uint8_t opcode, bool vlan);

// `n` bytes of a recognisable pattern.
std::vector<uint8_t> Pattern(size_t n, uint8_t seed = 0);

// EncodeHeaders + payload copy + SealFrame. `pkt` receives the offsets.
std::vector<uint8_t> BuildFrame(RocePacket* pkt, const std::vector<uint8_t>& payload);
std::vector<uint8_t> BuildFrame(NetworkType type, uint8_t opcode, bool vlan, size_t payload_len);

// Payload size to use for `opcode` in sample frames: `want` if it carries payload, else 0.
size_t PayloadFor(uint8_t opcode, size_t want);

// Rewrites the IPv4 header checksum of a frame (after a test edits the header).
void FixIpv4Checksum(std::vector<uint8_t>* frame, uint32_t l3_off);
// Recomputes and stores the ICRC of a frame whose RoCE packet ends at `end`.
void FixIcrc(std::vector<uint8_t>* frame, uint32_t l3_off, uint32_t end, NetworkType type);

const char* NetworkTypeName(NetworkType type);

}  // namespace vrdma::driver::wire::testing
