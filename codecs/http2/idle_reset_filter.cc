#include "codecs/http2/idle_reset_filter.h"

namespace sluice::http2 {
namespace {

constexpr uint32_t kRstStreamPayloadBytes = 4;

}  // namespace

bool IdleResetFilter::dropsStreamFrame(const uint8_t* header) {
  const uint32_t stream_id = ((uint32_t{header[5]} << 24) | (uint32_t{header[6]} << 16) |
                              (uint32_t{header[7]} << 8) | header[8]) &
                             0x7fffffffu;
  const uint8_t type = header[3];
  if (type != kRstStreamType) {
    if (type == kHeadersType && stream_id > highest_opened_) highest_opened_ = stream_id;
    in_header_block_ = (header[4] & kEndHeadersFlag) == 0;
    return false;
  }
  // Only a well-formed reset of a client stream (odd id) above every one
  // opened, outside a header block: anything else malformed stays nghttp2's
  // to refuse.
  return !in_header_block_ && payload_left_ == kRstStreamPayloadBytes && (stream_id & 1u) != 0 &&
         stream_id > highest_opened_;
}

}  // namespace sluice::http2
