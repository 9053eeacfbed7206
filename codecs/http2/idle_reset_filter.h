// IdleResetFilter: takes out of a client's bytes the RST_STREAM frames for
// streams it never opened, before nghttp2 reads them.
//
// RFC 9113 5.1 makes such a frame a connection error, and nghttp2 ends the
// connection for it (GOAWAY PROTOCOL_ERROR "RST_STREAM: stream in idle"). gRPC
// C-core 1.51 (Debian 12's grpc++ and grpcio) sends them: a call cancelled
// after its stream id was chosen but before its HEADERS went out is reset,
// and no HEADERS follow. A gRPC server ignores the reset, so a client that
// works against its backend directly lost every call on its connection
// through the gateway (about 200 per run in a review's cancel-heavy load).
// Dropping the frame is what ignoring it means: the stream was never opened,
// so nothing of it needs closing. The frame's own cost is bounded as every
// frame's is: its 13 bytes had to arrive.
//
// Frames are followed by their 9-byte headers only (payloads are never
// read); a header split across reads is held back until it is whole, so that
// no part of a dropped frame reaches nghttp2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::http2 {

class IdleResetFilter {
 public:
  // Hands `data` on to `sink(const uint8_t*, size_t) -> bool`, in order, in
  // as few calls as the frames allow, less the frames it drops. Stops (and
  // returns false) when the sink does.
  template <typename Sink>
  bool feed(const uint8_t* data, size_t len, Sink&& sink);

  // RST_STREAM frames dropped so far.
  uint64_t dropped() const { return dropped_; }

 private:
  static constexpr size_t kPrefaceBytes = 24;  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  static constexpr size_t kFrameHeaderBytes = 9;

  // Reads a whole frame header: whether to drop its frame (and how long its
  // payload is). Only HEADERS and RST_STREAM need more than their length.
  bool dropsFrame(const uint8_t* header) {
    payload_left_ = (size_t{header[0]} << 16) | (size_t{header[1]} << 8) | header[2];
    const uint8_t type = header[3];
    return (type == kHeadersType || type == kRstStreamType || type == kPushPromiseType ||
            type == kContinuationType) &&
           dropsStreamFrame(header);
  }
  // A HEADERS frame's stream is opened; a reset above every opened one is
  // dropped, unless it sits inside a header block (HEADERS or PUSH_PROMISE
  // without END_HEADERS, until the CONTINUATION that has it), where any
  // frame is nghttp2's connection error to report.
  bool dropsStreamFrame(const uint8_t* header);
  static constexpr uint8_t kHeadersType = 0x1;
  static constexpr uint8_t kRstStreamType = 0x3;
  static constexpr uint8_t kPushPromiseType = 0x5;
  static constexpr uint8_t kContinuationType = 0x9;
  static constexpr uint8_t kEndHeadersFlag = 0x4;

  size_t preface_left_ = kPrefaceBytes;
  size_t payload_left_ = 0;  // of the current frame, still to pass on or skip
  bool skipping_ = false;    // the current frame is being dropped
  uint8_t header_[kFrameHeaderBytes] = {};
  size_t header_have_ = 0;  // bytes of the next frame header gathered so far
  uint32_t highest_opened_ = 0;  // the largest stream id a HEADERS frame named
  bool in_header_block_ = false;  // a header block's CONTINUATION is still to come
  uint64_t dropped_ = 0;
};

template <typename Sink>
bool IdleResetFilter::feed(const uint8_t* data, size_t len, Sink&& sink) {
  const uint8_t* run = data;  // start of the bytes not yet handed on
  const uint8_t* at = data;
  const uint8_t* const end = data + len;
  while (at < end) {
    const size_t left = static_cast<size_t>(end - at);
    if (preface_left_ != 0 || payload_left_ != 0) {
      size_t& part = preface_left_ != 0 ? preface_left_ : payload_left_;
      const size_t n = part < left ? part : left;
      if (skipping_ && preface_left_ == 0) {
        at += n;
        run = at;
      } else {
        at += n;
      }
      part -= n;
      continue;
    }
    // A frame header: usually whole within this read.
    const size_t want = kFrameHeaderBytes - header_have_;
    if (left < want) {
      // Split across reads: hold it back until it is whole.
      if (at > run && !sink(run, static_cast<size_t>(at - run))) return false;
      std::memcpy(header_ + header_have_, at, left);
      header_have_ += left;
      return true;
    }
    const bool held = header_have_ != 0;
    const uint8_t* header_start = at;
    if (held) {
      std::memcpy(header_ + header_have_, at, want);
      header_have_ = 0;
      skipping_ = dropsFrame(header_);
    } else {
      skipping_ = dropsFrame(at);
    }
    at += want;
    if (skipping_) {
      if (header_start > run && !sink(run, static_cast<size_t>(header_start - run))) return false;
      run = at;
      ++dropped_;
    } else if (held) {
      // The bytes before this read's part of the header went on already.
      if (!sink(header_, kFrameHeaderBytes)) return false;
      run = at;
    }
  }
  if (at > run && !sink(run, static_cast<size_t>(at - run))) return false;
  return true;
}

}  // namespace sluice::http2
