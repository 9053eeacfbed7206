#include "codecs/grpc/frame_decoder.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "core/buffer_pool.h"

namespace sluice {
namespace {

// A prefix may announce up to 4 GiB; reserving that up front would let one
// 5-byte prefix cost the limit in memory before any payload arrives.
constexpr size_t kMaxReserveBytes = 64 * 1024;

uint32_t readBigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

Status GrpcFrameDecoder::fail(Status status) {
  failed_ = true;
  error_ = status;
  return status;
}

Status GrpcFrameDecoder::decode(std::string_view data, MessageSink& sink) {
  if (failed_) return error_;
  if (stopped_) return Status::ok();

  while (!data.empty()) {
    if (!in_payload_) {
      size_t n = std::min(kGrpcPrefixBytes - prefix_have_, data.size());
      std::memcpy(prefix_ + prefix_have_, data.data(), n);
      prefix_have_ += n;
      data.remove_prefix(n);
      if (prefix_have_ < kGrpcPrefixBytes) break;

      if (prefix_[0] > 1) {
        return fail(Status(StatusCode::Internal,
                           fmt::format("grpc message has invalid flags byte 0x{:02x} (expected 0 or 1)",
                                       prefix_[0])));
      }
      payload_len_ = readBigEndian32(prefix_ + 1);
      if (payload_len_ > max_message_bytes_) {
        return fail(Status(StatusCode::ResourceExhausted,
                           fmt::format("grpc message of {} bytes exceeds the limit of {} bytes",
                                       payload_len_, max_message_bytes_)));
      }
      current_.compressed = prefix_[0] == 1;
      current_.payload = buffer_pool::acquire(std::min<size_t>(payload_len_, kMaxReserveBytes));
      in_payload_ = true;
    }

    size_t n = std::min<size_t>(payload_len_ - current_.payload.size(), data.size());
    if (const size_t need = current_.payload.size() + n; need > current_.payload.capacity()) {
      // Geometric growth, but never past the announced length: the memory a
      // message holds (heldBytes, which the per-connection limits count) is
      // at most its size, not up to twice it. (reserve() on a non-empty
      // string would double anyway; on an empty one it is exact.)
      std::string grown;
      grown.reserve(std::min<size_t>(payload_len_, std::max(need, 2 * current_.payload.capacity())));
      grown.append(current_.payload);
      buffer_pool::release(std::exchange(current_.payload, std::move(grown)));
    }
    current_.payload.append(data.data(), n);
    data.remove_prefix(n);
    // Checked even when `data` is now empty: an empty message is complete as
    // soon as its prefix is, and must not wait for the next chunk.
    if (current_.payload.size() < payload_len_) break;

    // Reset before calling out, so the decoder is consistent if the sink
    // looks at it (bufferedBytes) or ends the stream.
    Message message = std::move(current_);
    current_ = Message{};
    prefix_have_ = 0;
    in_payload_ = false;
    payload_len_ = 0;
    if (!sink.onMessage(std::move(message))) {
      stopped_ = true;
      break;
    }
  }
  return Status::ok();
}

Status GrpcFrameDecoder::finish() const {
  if (failed_) return error_;
  if (stopped_ || prefix_have_ == 0) return Status::ok();
  if (!in_payload_) {
    return Status(StatusCode::Internal,
                  fmt::format("stream ended inside a grpc message prefix ({} of {} bytes)",
                              prefix_have_, kGrpcPrefixBytes));
  }
  return Status(StatusCode::Internal,
                fmt::format("stream ended inside a grpc message ({} of {} payload bytes)",
                            current_.payload.size(), payload_len_));
}

size_t GrpcFrameDecoder::bufferedBytes() const { return prefix_have_ + current_.payload.size(); }

size_t GrpcFrameDecoder::heldBytes() const {
  // Capped at the announced length: a pooled buffer may be larger than the
  // message it took (up to the pool's largest), which must not count against
  // the limits as if the peer had sent that much.
  return in_payload_ ? std::min<size_t>(current_.payload.capacity(), payload_len_) : prefix_have_;
}

void encodeGrpcPrefix(uint8_t out[kGrpcPrefixBytes], bool compressed, uint32_t length) {
  out[0] = compressed ? 1 : 0;
  out[1] = static_cast<uint8_t>(length >> 24);
  out[2] = static_cast<uint8_t>(length >> 16);
  out[3] = static_cast<uint8_t>(length >> 8);
  out[4] = static_cast<uint8_t>(length);
}

}  // namespace sluice
