#include "codecs/http2/outbound_data.h"

#include <algorithm>
#include <cstring>

#include "codecs/grpc/frame_decoder.h"

namespace sluice {

void OutboundData::appendMessage(Message&& message) {
  Chunk& c = chunks_.emplace_back();
  encodeGrpcPrefix(c.prefix, message.compressed, static_cast<uint32_t>(message.payload.size()));
  c.prefix_len = kGrpcPrefixBytes;
  c.payload = std::move(message.payload);
  bytes_ += c.size();
  grew();
}

void OutboundData::appendRaw(std::string bytes) {
  if (bytes.empty()) return;
  Chunk& c = chunks_.emplace_back();
  c.prefix_len = 0;
  c.payload = std::move(bytes);
  bytes_ += c.size();
  grew();
}

void OutboundData::grew() {
  if (!above_ && bytes_ > high_) {
    above_ = true;
    if (on_watermark_) on_watermark_(true);
  }
}

size_t OutboundData::read(uint8_t* out, size_t max) {
  size_t copied = 0;
  while (copied < max && !chunks_.empty()) {
    Chunk& c = chunks_.front();
    if (c.offset < c.prefix_len) {
      size_t n = std::min<size_t>(c.prefix_len - c.offset, max - copied);
      std::memcpy(out + copied, c.prefix + c.offset, n);
      c.offset += n;
      copied += n;
      continue;
    }
    size_t in_payload = c.offset - c.prefix_len;
    size_t n = std::min(c.payload.size() - in_payload, max - copied);
    std::memcpy(out + copied, c.payload.data() + in_payload, n);
    c.offset += n;
    copied += n;
    if (c.offset == c.size()) chunks_.pop_front();
  }
  bytes_ -= copied;
  if (above_ && bytes_ <= low_) {
    above_ = false;
    if (on_watermark_) on_watermark_(false);
  }
  return copied;
}

}  // namespace sluice
