// GrpcFrameDecoder: splits a stream of DATA bytes into gRPC messages.
//
// Owned by one stream direction. Bytes arrive in arbitrary chunks (a message may
// span many DATA frames, a frame may hold many messages); every complete message
// is handed to the sink in order. The decoder never interprets the payload.
// After an error the decoder is failed for good: the stream must be ended.
#pragma once

#include <cstdint>
#include <string>
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
  // A message of `length` bytes begins (its prefix is complete and valid):
  // false holds it, and every byte after its prefix, until resume(). The
  // holder must keep the peer's window shut meanwhile: the decoder keeps
  // what arrives, unframed, for as long as it waits.
  virtual bool admit(uint32_t /*length*/) { return true; }
};

class GrpcFrameDecoder {
 public:
  explicit GrpcFrameDecoder(uint32_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Errors: RESOURCE_EXHAUSTED when a prefix announces more than the limit
  // (checked as soon as the prefix is complete, before buffering the payload);
  // INTERNAL when the flags byte is neither 0 nor 1.
  Status decode(std::string_view data, MessageSink& sink);

  // Called at end of stream: INTERNAL if it ended inside a message. Not
  // while waiting(): the end comes after the bytes it holds.
  Status finish() const;

  // Between messages, holding nothing (resetting it would free nothing).
  bool empty() const { return prefix_have_ == 0 && !failed_ && !stopped_; }
  // A message's admit() said no: true until resume().
  bool waiting() const { return waiting_; }
  // Length of the message that waits, or of the one being reassembled.
  uint32_t messageLength() const { return payload_len_; }
  // Admits the message that waits and decodes what arrived behind it (which
  // may make the next message wait in turn).
  Status resume(MessageSink& sink);

  // Bytes of the message being reassembled (prefix included), for accounting.
  size_t bufferedBytes() const;
  // Memory that message holds: its buffer's capacity, reserved when the
  // prefix announced the length (up to kMaxReserveBytes) and grown since.
  size_t heldBytes() const;
  // What the per-connection limits count for the message being reassembled:
  // its whole announced length, from its admission on (a prefix arriving,
  // or waiting, holds no memory of its own).
  size_t admittedBytes() const { return in_payload_ ? payload_len_ : 0; }
  // Bytes that arrived while waiting(), kept as they came.
  size_t waitingBytes() const { return waiting_bytes_.size(); }
  bool failed() const { return failed_; }

 private:
  uint32_t max_message_bytes_;
  uint8_t prefix_[kGrpcPrefixBytes] = {};
  size_t prefix_have_ = 0;
  bool in_payload_ = false;
  uint32_t payload_len_ = 0;
  Message current_;
  bool waiting_ = false;
  std::string waiting_bytes_;
  bool failed_ = false;
  // The first error, returned again by every later call: a failed stream must
  // not be resynchronised on a guessed message boundary.
  Status error_;
  // Set when the sink returned false: the bytes after that message were dropped,
  // so anything arriving later cannot be framed and is dropped too.
  bool stopped_ = false;

  Status fail(Status status);
  void startPayload();
  // Hands the message just completed to the sink; false if it stopped.
  bool deliver(MessageSink& sink);
};

// Writes the 5-byte prefix for a message of `length` bytes into `out`.
void encodeGrpcPrefix(uint8_t out[kGrpcPrefixBytes], bool compressed, uint32_t length);

}  // namespace sluice
