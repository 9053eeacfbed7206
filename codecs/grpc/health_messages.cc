#include "codecs/grpc/health_messages.h"

#include <cstdint>

namespace sluice::health_messages {
namespace {

bool readVarint(std::string_view s, size_t& pos, uint64_t& out) {
  out = 0;
  for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
    auto b = static_cast<uint8_t>(s[pos++]);
    out |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

void writeVarint(std::string& out, uint64_t n) {
  for (; n >= 0x80; n >>= 7) out += static_cast<char>((n & 0x7f) | 0x80);
  out += static_cast<char>(n);
}

// Walks the fields of a message: `on_field(number, wire_type, varint, bytes)`
// for each. False if the bytes are not a well-formed message.
template <typename OnField>
bool forEachField(std::string_view payload, OnField on_field) {
  size_t pos = 0;
  while (pos < payload.size()) {
    uint64_t tag;
    // Field numbers are 1 to 2^29 - 1.
    if (!readVarint(payload, pos, tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return false;
    uint64_t value = 0;
    std::string_view bytes;
    switch (tag & 7) {
      case 0:
        if (!readVarint(payload, pos, value)) return false;
        break;
      case 1:
        if (payload.size() - pos < 8) return false;
        pos += 8;
        break;
      case 2:
        if (!readVarint(payload, pos, value) || value > payload.size() - pos) return false;
        bytes = payload.substr(pos, value);
        pos += value;
        break;
      case 5:
        if (payload.size() - pos < 4) return false;
        pos += 4;
        break;
      default:
        return false;
    }
    on_field(tag >> 3, tag & 7, value, bytes);
  }
  return true;
}

}  // namespace

std::string encodeRequest(std::string_view service) {
  std::string out;
  if (service.empty()) return out;  // proto3 leaves default values out
  out += '\x0a';                    // field 1, length-delimited
  writeVarint(out, service.size());
  out += service;
  return out;
}

std::optional<std::string> decodeRequest(std::string_view payload) {
  std::string service;
  bool ok = forEachField(payload, [&](uint64_t number, uint64_t wire_type, uint64_t, std::string_view bytes) {
    // Field 1 of another wire type is an unknown field to protobuf too.
    if (number == 1 && wire_type == 2) service = std::string(bytes);  // the last one wins
  });
  if (!ok) return std::nullopt;
  return service;
}

std::string encodeResponse(ServingStatus status) {
  std::string out;
  if (status == ServingStatus::Unknown) return out;
  out += '\x08';  // field 1, varint
  writeVarint(out, static_cast<uint64_t>(status));
  return out;
}

std::optional<int> decodeResponseStatus(std::string_view payload) {
  int status = 0;  // proto3 default: UNKNOWN
  bool ok = forEachField(payload, [&](uint64_t number, uint64_t wire_type, uint64_t value, std::string_view) {
    if (number == 1 && wire_type == 0) status = static_cast<int>(value);
  });
  if (!ok) return std::nullopt;
  return status;
}

}  // namespace sluice::health_messages
