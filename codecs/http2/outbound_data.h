// OutboundData: the bytes one stream direction still has to hand to nghttp2.
//
// Messages are queued with their 5-byte prefix kept apart from the payload, so
// the payload is never copied to prepend it. nghttp2 asks how much is ready
// (readable) and, when the peer's window allows, the session writes those
// bytes straight from here to the socket (peek, then consume): after the one
// copy out of nghttp2's receive callback, a message is not copied again. The
// queue reports crossing its watermarks so the other side can stop (and
// resume) acknowledging bytes: this is what makes a slow reader slow down the
// writer instead of growing memory. Payload buffers go back to the
// per-worker buffer pool once sent.
//
// Small messages that arrive while others are still queued are packed: their
// prefix and payload are copied into one shared buffer instead of taking a
// Chunk (and perhaps a heap buffer) each. Flow control counts wire bytes, and
// an empty message is 5 of them: unpacked, a client streaming empty messages
// to a backend that does not read made the gateway hold about 48 bytes of
// Chunk per 5 bytes it counted. A message alone in the queue (the common,
// fast case) is never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "core/byte_span.h"
#include "core/message.h"
#include "core/ring_queue.h"

namespace sluice {

class OutboundData {
 public:
  // Called with true when the queue passes the high watermark, false when it
  // drains back below the low watermark.
  using WatermarkFn = std::function<void(bool above)>;

  OutboundData(size_t high_watermark, size_t low_watermark)
      : high_(high_watermark), low_(low_watermark) {}
  ~OutboundData();

  void setWatermarkCallback(WatermarkFn fn) { on_watermark_ = std::move(fn); }
  // Keeps `*total` counting this queue's bytes too (until the queue is
  // destroyed): one count over all the queues of a connection. It must
  // outlive the queue.
  void shareTotal(size_t* total);

  void appendMessage(Message&& message);
  // Raw bytes (HTTP error bodies).
  void appendRaw(std::string bytes);

  // Bytes go out in two steps: take() hands the next bytes to a write batch
  // (they stay here, untouched, until it is written), consume() then drops
  // the oldest taken bytes.
  //
  // How many of the next `max` untaken bytes fit in `max_spans` pieces.
  size_t readable(size_t max, size_t max_spans) const;
  // The next `len` untaken bytes (len <= readable(...)) as pieces, now taken;
  // returns the number of pieces.
  size_t take(size_t len, ByteSpan* spans, size_t max_spans);
  // Drops the oldest `len` taken bytes: they have been written.
  void consume(size_t len);
  // Frees what is queued and not taken (the stream was reset: it will never
  // go out), without a watermark callback.
  void abandon();

  // Bytes not yet taken.
  size_t untaken() const { return bytes_ - taken_; }
  size_t size() const { return bytes_; }
  // Bytes written since the queue was made: progress, for a reader that stalls.
  uint64_t consumedTotal() const { return consumed_total_; }
  bool empty() const { return bytes_ == 0; }
  bool aboveHighWatermark() const { return above_; }

 private:
  struct Chunk {
    uint8_t prefix[kGrpcPrefixBytes];
    uint8_t prefix_len = 0;  // 0 for raw and packed chunks
    bool packed = false;     // payload holds whole small messages, prefixes included
    std::string payload;
    size_t offset = 0;  // bytes of prefix+payload already consumed
    size_t size() const { return prefix_len + payload.size(); }
  };
  // Copies a small message into the packed chunk at the tail (a new one if
  // the tail is not packed or is full).
  void packMessage(Message& message);
  void added(size_t n);
  void grew();
  // Calls fn(data, len) for each contiguous piece after the first `skip` bytes,
  // until it returns false.
  template <typename F> void forEachPiece(size_t skip, F fn) const;

  RingQueue<Chunk> chunks_;
  size_t bytes_ = 0;
  size_t taken_ = 0;
  size_t high_;
  size_t low_;
  bool above_ = false;
  size_t* shared_total_ = nullptr;
  uint64_t consumed_total_ = 0;
  WatermarkFn on_watermark_;
};

}  // namespace sluice
