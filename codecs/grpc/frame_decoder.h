// GrpcFrameDecoder: splits a stream of DATA bytes into gRPC messages.
//
// Owned by one stream direction. Bytes arrive in arbitrary chunks (a message may
// span many DATA frames, a frame may hold many messages); every complete message
// is handed to the sink in order. The decoder never interprets the payload.
// After an error the decoder is failed for good: the stream must be ended.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/message.h"
#include "core/status.h"

namespace sluice {

class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // Returns false to stop decoding (the stream was ended by the handler);
  // the remaining bytes of the chunk are then dropped.
  virtual bool onMessage(Message&& message) = 0;
};

class GrpcFrameDecoder {
 public:
  explicit GrpcFrameDecoder(uint32_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Errors: RESOURCE_EXHAUSTED when a prefix announces more than the limit
  // (checked as soon as the prefix is complete, before buffering the payload);
  // INTERNAL when the flags byte is neither 0 nor 1.
  Status decode(std::string_view data, MessageSink& sink);

  // Called at end of stream: INTERNAL if it ended inside a message.
  Status finish() const;

  // Bytes of the message being reassembled (prefix included), for accounting.
  size_t bufferedBytes() const;
  // Memory that message holds: its buffer's capacity, reserved when the
  // prefix announced the length (up to kMaxReserveBytes) and grown since.
  size_t heldBytes() const;
  bool failed() const { return failed_; }

 private:
  uint32_t max_message_bytes_;
  uint8_t prefix_[kGrpcPrefixBytes] = {};
  size_t prefix_have_ = 0;
  bool in_payload_ = false;
  uint32_t payload_len_ = 0;
  Message current_;
  bool failed_ = false;
  // The first error, returned again by every later call: a failed stream must
  // not be resynchronised on a guessed message boundary.
  Status error_;
  // Set when the sink returned false: the bytes after that message were dropped,
  // so anything arriving later cannot be framed and is dropped too.
  bool stopped_ = false;

  Status fail(Status status);
};

// Writes the 5-byte prefix for a message of `length` bytes into `out`.
void encodeGrpcPrefix(uint8_t out[kGrpcPrefixBytes], bool compressed, uint32_t length);

}  // namespace sluice
