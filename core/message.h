// Message: one gRPC length-prefixed message, as filters see it.
//
// The payload bytes are never interpreted by the gateway; the compressed flag
// is carried through untouched (the gateway does not recompress).
#pragma once

#include <cstdint>
#include <string>

namespace sluice {

constexpr size_t kGrpcPrefixBytes = 5;

struct Message {
  bool compressed = false;
  std::string payload;

  // Bytes this message takes on the wire: the 5-byte prefix plus the payload.
  size_t wireSize() const { return kGrpcPrefixBytes + payload.size(); }
};

}  // namespace sluice
