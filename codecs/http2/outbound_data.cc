#include "codecs/http2/outbound_data.h"

#include <algorithm>

#include "codecs/grpc/frame_decoder.h"
#include "core/buffer_pool.h"

namespace sluice {

OutboundData::~OutboundData() {
  while (!chunks_.empty()) {
    buffer_pool::release(std::move(chunks_.front().payload));
    chunks_.pop_front();
  }
}

void OutboundData::appendMessage(Message&& message) {
  Chunk& c = chunks_.emplace_back();
  encodeGrpcPrefix(c.prefix, message.compressed, static_cast<uint32_t>(message.payload.size()));
  c.prefix_len = kGrpcPrefixBytes;
  c.payload = std::move(message.payload);
  c.offset = 0;
  bytes_ += c.size();
  grew();
}

void OutboundData::appendRaw(std::string bytes) {
  if (bytes.empty()) return;
  Chunk& c = chunks_.emplace_back();
  c.prefix_len = 0;
  c.payload = std::move(bytes);
  c.offset = 0;
  bytes_ += c.size();
  grew();
}

void OutboundData::grew() {
  if (!above_ && bytes_ > high_) {
    above_ = true;
    if (on_watermark_) on_watermark_(true);
  }
}

size_t OutboundData::readable(size_t max, size_t max_spans) const {
  size_t total = 0;
  size_t spans = 0;
  for (size_t i = 0; i < chunks_.size() && total < max && spans < max_spans; ++i) {
    const Chunk& c = chunks_.at(i);
    if (c.offset < c.prefix_len) {
      total += c.prefix_len - c.offset;
      ++spans;
      if (spans < max_spans && total < max) {
        total += c.payload.size();
        if (!c.payload.empty()) ++spans;
      }
    } else {
      total += c.size() - c.offset;
      ++spans;
    }
  }
  return std::min(total, max);
}

size_t OutboundData::peek(size_t len, ByteSpan* spans, size_t max_spans) const {
  size_t n = 0;
  for (size_t i = 0; i < chunks_.size() && len > 0 && n < max_spans; ++i) {
    const Chunk& c = chunks_.at(i);
    if (c.offset < c.prefix_len) {
      size_t take = std::min(len, c.prefix_len - c.offset);
      spans[n++] = {c.prefix + c.offset, take};
      len -= take;
      if (len == 0 || n == max_spans) break;
      take = std::min(len, c.payload.size());
      if (take > 0) {
        spans[n++] = {reinterpret_cast<const uint8_t*>(c.payload.data()), take};
        len -= take;
      }
    } else {
      size_t in_payload = c.offset - c.prefix_len;
      size_t take = std::min(len, c.payload.size() - in_payload);
      spans[n++] = {reinterpret_cast<const uint8_t*>(c.payload.data()) + in_payload, take};
      len -= take;
    }
  }
  return n;
}

void OutboundData::consume(size_t len) {
  bytes_ -= len;
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
