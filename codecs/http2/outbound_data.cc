#include "codecs/http2/outbound_data.h"

#include <algorithm>

#include "codecs/grpc/frame_decoder.h"
#include "core/buffer_pool.h"

namespace sluice {
namespace {

// Payloads up to this size are packed when they queue up behind others...
constexpr size_t kPackMaxPayload = 256;
// ...into buffers of this size (from the pool, like any payload buffer).
constexpr size_t kPackBufferBytes = 16 * 1024;

}  // namespace

OutboundData::~OutboundData() {
  if (shared_total_ != nullptr) *shared_total_ -= bytes_;
  while (!chunks_.empty()) {
    buffer_pool::release(std::move(chunks_.front().payload));
    chunks_.pop_front();
  }
}

void OutboundData::appendMessage(Message&& message) {
  const size_t n = message.payload.size();
  if (n <= kPackMaxPayload && !chunks_.empty()) {
    packMessage(message);
    return;
  }
  Chunk& c = chunks_.emplace_back();
  encodeGrpcPrefix(c.prefix, message.compressed, static_cast<uint32_t>(message.payload.size()));
  c.prefix_len = kGrpcPrefixBytes;
  c.packed = false;
  c.payload = std::move(message.payload);
  c.offset = 0;
  added(c.size());
  grew();
}

void OutboundData::packMessage(Message& message) {
  const size_t wire = kGrpcPrefixBytes + message.payload.size();
  Chunk* tail = &chunks_.back();
  // Appended only within capacity: bytes of the tail already handed to a
  // write batch must not move.
  if (!tail->packed || tail->payload.capacity() - tail->payload.size() < wire) {
    tail = &chunks_.emplace_back();
    tail->prefix_len = 0;
    tail->packed = true;
    tail->offset = 0;
    tail->payload = buffer_pool::acquire(kPackBufferBytes);
  }
  uint8_t prefix[kGrpcPrefixBytes];
  encodeGrpcPrefix(prefix, message.compressed, static_cast<uint32_t>(message.payload.size()));
  tail->payload.append(reinterpret_cast<const char*>(prefix), kGrpcPrefixBytes);
  tail->payload.append(message.payload);
  buffer_pool::release(std::move(message.payload));
  added(wire);
  grew();
}

void OutboundData::appendRaw(std::string bytes) {
  if (bytes.empty()) return;
  Chunk& c = chunks_.emplace_back();
  c.prefix_len = 0;
  c.packed = false;
  c.payload = std::move(bytes);
  c.offset = 0;
  added(c.size());
  grew();
}

void OutboundData::abandon() {
  // Taken bytes belong to a write batch until it returns; between writes,
  // when this is called, there are none.
  if (taken_ != 0) return;
  if (shared_total_ != nullptr) *shared_total_ -= bytes_;
  while (!chunks_.empty()) {
    buffer_pool::release(std::move(chunks_.front().payload));
    chunks_.pop_front();
  }
  bytes_ = 0;
  above_ = false;
}

void OutboundData::shareTotal(size_t* total) {
  if (shared_total_ != nullptr) *shared_total_ -= bytes_;
  shared_total_ = total;
  if (shared_total_ != nullptr) *shared_total_ += bytes_;
}

void OutboundData::added(size_t n) {
  bytes_ += n;
  if (shared_total_ != nullptr) *shared_total_ += n;
}

void OutboundData::grew() {
  if (!above_ && bytes_ > high_) {
    above_ = true;
    if (on_watermark_) on_watermark_(true);
  }
}

template <typename F>
void OutboundData::forEachPiece(size_t skip, F fn) const {
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const Chunk& c = chunks_.at(i);
    size_t pos = c.offset;  // position within prefix+payload
    size_t left = c.size() - pos;
    if (skip >= left) {
      skip -= left;
      continue;
    }
    pos += skip;
    skip = 0;
    if (pos < c.prefix_len) {
      if (!fn(c.prefix + pos, c.prefix_len - pos)) return;
      pos = c.prefix_len;
    }
    if (pos < c.size()) {
      const auto* p = reinterpret_cast<const uint8_t*>(c.payload.data()) + (pos - c.prefix_len);
      if (!fn(p, c.size() - pos)) return;
    }
  }
}

size_t OutboundData::readable(size_t max, size_t max_spans) const {
  size_t total = 0;
  size_t spans = 0;
  forEachPiece(taken_, [&](const uint8_t*, size_t len) {
    if (spans == max_spans || total >= max) return false;
    total += len;
    ++spans;
    return true;
  });
  return std::min(total, max);
}

size_t OutboundData::take(size_t len, ByteSpan* spans, size_t max_spans) {
  size_t n = 0;
  size_t want = len;
  forEachPiece(taken_, [&](const uint8_t* data, size_t piece) {
    if (want == 0 || n == max_spans) return false;
    size_t use = std::min(piece, want);
    spans[n++] = {data, use};
    want -= use;
    return want > 0;
  });
  taken_ += len - want;
  return n;
}

void OutboundData::consume(size_t len) {
  bytes_ -= len;
  consumed_total_ += len;
  if (shared_total_ != nullptr) *shared_total_ -= len;
  taken_ -= len;
  while (len > 0 && !chunks_.empty()) {
    Chunk& c = chunks_.front();
    size_t take = std::min(len, c.size() - c.offset);
    c.offset += take;
    len -= take;
    if (c.offset == c.size()) {
      buffer_pool::release(std::move(c.payload));
      chunks_.pop_front();
    }
  }
  // An empty message's chunk is complete once its prefix is consumed.
  while (!chunks_.empty() && chunks_.front().offset == chunks_.front().size() && chunks_.front().size() > 0) {
    chunks_.pop_front();
  }
  if (above_ && bytes_ <= low_) {
    above_ = false;
    if (on_watermark_) on_watermark_(false);
  }
}

}  // namespace sluice
