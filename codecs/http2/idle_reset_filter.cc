#include "codecs/http2/idle_reset_filter.h"

namespace sluice::http2 {
namespace {

constexpr uint8_t kHeadersType = 0x1;
constexpr uint8_t kRstStreamType = 0x3;
constexpr uint32_t kRstStreamPayloadBytes = 4;

}  // namespace

bool IdleResetFilter::dropsFrame() {
  const uint32_t length = (uint32_t{header_[0]} << 16) | (uint32_t{header_[1]} << 8) | header_[2];
  const uint8_t type = header_[3];
  const uint32_t stream_id = ((uint32_t{header_[5]} << 24) | (uint32_t{header_[6]} << 16) |
                              (uint32_t{header_[7]} << 8) | header_[8]) &
                             0x7fffffffu;
  payload_left_ = length;
  if (type == kHeadersType) {
    if (stream_id > highest_opened_) highest_opened_ = stream_id;
    return false;
  }
  // Only a well-formed reset of a client stream (odd id) above every one
  // opened: anything else malformed stays nghttp2's to refuse.
  return type == kRstStreamType && length == kRstStreamPayloadBytes && (stream_id & 1u) != 0 &&
         stream_id > highest_opened_;
}

}  // namespace sluice::http2
