// OutboundData: the bytes one stream direction still has to hand to nghttp2.
//
// Messages are queued with their 5-byte prefix kept apart from the payload, so
// the payload is never copied to prepend it. nghttp2 pulls bytes with read()
// when the peer's flow-control window allows. The queue reports crossing its
// watermarks so the other side can stop (and resume) acknowledging bytes: this
// is what makes a slow reader slow down the writer instead of growing memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "core/message.h"

namespace sluice {

class OutboundData {
 public:
  // Called with true when the queue passes the high watermark, false when it
  // drains back below the low watermark.
  using WatermarkFn = std::function<void(bool above)>;

  OutboundData(size_t high_watermark, size_t low_watermark)
      : high_(high_watermark), low_(low_watermark) {}

  void setWatermarkCallback(WatermarkFn fn) { on_watermark_ = std::move(fn); }

  void appendMessage(Message&& message);
  // Raw bytes (HTTP error bodies).
  void appendRaw(std::string bytes);

  // Copies up to `max` bytes into `out`; returns how many.
  size_t read(uint8_t* out, size_t max);

  size_t size() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }
  bool aboveHighWatermark() const { return above_; }

 private:
  struct Chunk {
    uint8_t prefix[kGrpcPrefixBytes];
    uint8_t prefix_len;  // 0 for raw chunks
    std::string payload;
    size_t offset = 0;  // bytes of prefix+payload already read
    size_t size() const { return prefix_len + payload.size(); }
  };
  void grew();

  std::deque<Chunk> chunks_;
  size_t bytes_ = 0;
  size_t high_;
  size_t low_;
  bool above_ = false;
  WatermarkFn on_watermark_;
};

}  // namespace sluice
