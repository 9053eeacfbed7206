#include "codecs/grpc/frame_decoder.h"
#include "core/buffer_pool.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

namespace sluice {
namespace {

std::string prefixOnly(uint8_t flags, uint32_t length) {
  uint8_t prefix[kGrpcPrefixBytes];
  encodeGrpcPrefix(prefix, false, length);
  prefix[0] = flags;
  return std::string(reinterpret_cast<const char*>(prefix), kGrpcPrefixBytes);
}

std::string frame(std::string_view payload, bool compressed = false) {
  return prefixOnly(compressed ? 1 : 0, static_cast<uint32_t>(payload.size())) + std::string(payload);
}

class RecordingSink : public MessageSink {
 public:
  explicit RecordingSink(size_t stop_after = std::numeric_limits<size_t>::max()) : stop_after_(stop_after) {}
  bool onMessage(Message&& message) override {
    messages.push_back(std::move(message));
    return messages.size() < stop_after_;
  }
  std::vector<Message> messages;

 private:
  size_t stop_after_;
};

// Four messages: non-empty, empty, compressed, and one longer than a prefix.
struct Expected {
  std::string payload;
  bool compressed;
};
const std::vector<Expected> kSequence = {
    {"hello", false}, {"", false}, {"zipped", true}, {std::string(40, 'x'), false}};

std::string encodeSequence() {
  std::string wire;
  for (const auto& e : kSequence) wire += frame(e.payload, e.compressed);
  return wire;
}

// Decodes `wire` cut at the given offsets and checks every message arrived intact.
bool decodesIntact(const std::string& wire, const std::vector<size_t>& cuts) {
  GrpcFrameDecoder decoder(1024);
  RecordingSink sink;
  size_t from = 0;
  for (size_t cut : cuts) {
    if (!decoder.decode(std::string_view(wire).substr(from, cut - from), sink).isOk()) return false;
    from = cut;
  }
  if (!decoder.decode(std::string_view(wire).substr(from), sink).isOk()) return false;
  if (!decoder.finish().isOk() || decoder.bufferedBytes() != 0) return false;
  if (sink.messages.size() != kSequence.size()) return false;
  for (size_t i = 0; i < kSequence.size(); ++i) {
    if (sink.messages[i].payload != kSequence[i].payload) return false;
    if (sink.messages[i].compressed != kSequence[i].compressed) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("encodeGrpcPrefix writes flags and a big-endian length", "[frame_decoder]") {
  uint8_t prefix[kGrpcPrefixBytes];
  encodeGrpcPrefix(prefix, true, 0x01020304);
  CHECK(std::vector<uint8_t>(prefix, prefix + 5) == std::vector<uint8_t>{1, 1, 2, 3, 4});
  encodeGrpcPrefix(prefix, false, 0xFFFFFFFF);
  CHECK(std::vector<uint8_t>(prefix, prefix + 5) == std::vector<uint8_t>{0, 0xFF, 0xFF, 0xFF, 0xFF});
}

TEST_CASE("messages survive every split into two and three chunks", "[frame_decoder]") {
  const std::string wire = encodeSequence();
  for (size_t i = 0; i <= wire.size(); ++i) {
    INFO("cut at " << i);
    REQUIRE(decodesIntact(wire, {i}));
    for (size_t j = i; j <= wire.size(); ++j) {
      INFO("second cut at " << j);
      REQUIRE(decodesIntact(wire, {i, j}));
    }
  }
}

TEST_CASE("messages survive byte-by-byte delivery", "[frame_decoder]") {
  const std::string wire = encodeSequence();
  std::vector<size_t> cuts;
  for (size_t i = 1; i < wire.size(); ++i) cuts.push_back(i);
  REQUIRE(decodesIntact(wire, cuts));
}

TEST_CASE("several messages in one chunk are delivered in order", "[frame_decoder]") {
  GrpcFrameDecoder decoder(1024);
  RecordingSink sink;
  REQUIRE(decoder.decode(frame("a") + frame("bb") + frame("ccc"), sink).isOk());
  REQUIRE(sink.messages.size() == 3);
  CHECK(sink.messages[0].payload == "a");
  CHECK(sink.messages[1].payload == "bb");
  CHECK(sink.messages[2].payload == "ccc");
}

TEST_CASE("empty messages are delivered, without waiting for more bytes", "[frame_decoder]") {
  GrpcFrameDecoder decoder(0);  // a zero limit still admits empty messages
  RecordingSink sink;
  REQUIRE(decoder.decode(frame("") + frame(""), sink).isOk());
  CHECK(sink.messages.size() == 2);
  REQUIRE(decoder.decode(frame("", true), sink).isOk());
  REQUIRE(sink.messages.size() == 3);
  CHECK(sink.messages[2].payload.empty());
  CHECK(sink.messages[2].compressed);
  CHECK(decoder.finish().isOk());
}

TEST_CASE("an empty message takes no pooled buffer", "[frame_decoder]") {
  std::string big;
  big.reserve(64 << 10);
  buffer_pool::release(std::move(big));
  GrpcFrameDecoder decoder(1 << 20);
  RecordingSink sink;
  REQUIRE(decoder.decode(frame("") + frame(std::string(100, 'x')), sink).isOk());
  REQUIRE(sink.messages.size() == 2);
  CHECK(sink.messages[0].payload.capacity() < 64);        // no heap buffer at all
  CHECK(sink.messages[1].payload.capacity() >= 64 << 10);  // the pooled one went to the real message
}

TEST_CASE("the compressed flag is carried per message", "[frame_decoder]") {
  GrpcFrameDecoder decoder(1024);
  RecordingSink sink;
  REQUIRE(decoder.decode(frame("c", true) + frame("p", false), sink).isOk());
  REQUIRE(sink.messages.size() == 2);
  CHECK(sink.messages[0].compressed);
  CHECK_FALSE(sink.messages[1].compressed);
}

TEST_CASE("a large message is reassembled from many chunks", "[frame_decoder]") {
  std::string payload(200 * 1024, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 31);
  const std::string wire = frame(payload);
  GrpcFrameDecoder decoder(256 * 1024);
  RecordingSink sink;
  for (size_t from = 0; from < wire.size(); from += 1000) {
    REQUIRE(decoder.decode(std::string_view(wire).substr(from, 1000), sink).isOk());
    if (sink.messages.empty()) CHECK(decoder.bufferedBytes() == std::min(from + 1000, wire.size()));
  }
  REQUIRE(sink.messages.size() == 1);
  CHECK(sink.messages[0].payload == payload);
  CHECK(decoder.bufferedBytes() == 0);
}

TEST_CASE("a flags byte other than 0 or 1 is INTERNAL", "[frame_decoder]") {
  const uint8_t flags = GENERATE(2, 0x80, 0xFF);
  GrpcFrameDecoder decoder(1024);
  RecordingSink sink;
  Status status = decoder.decode(frame("ok") + prefixOnly(flags, 1) + "x" + frame("later"), sink);
  CHECK(status.code() == StatusCode::Internal);
  CHECK_THAT(status.message(), Catch::Contains(fmt::format("0x{:02x}", flags)));
  CHECK(decoder.failed());
  CHECK(sink.messages.size() == 1);  // the message before the bad one still arrived

  // Failed for good: later bytes are refused with the same error.
  Status again = decoder.decode(frame("more"), sink);
  CHECK(again.code() == StatusCode::Internal);
  CHECK(again.message() == status.message());
  CHECK(sink.messages.size() == 1);
  CHECK(decoder.finish().code() == StatusCode::Internal);
}

TEST_CASE("an oversize message is refused from its prefix alone", "[frame_decoder]") {
  GrpcFrameDecoder decoder(100);
  RecordingSink sink;
  Status status = decoder.decode(prefixOnly(0, 101), sink);
  CHECK(status.code() == StatusCode::ResourceExhausted);
  CHECK(status.message() == "grpc message of 101 bytes exceeds the limit of 100 bytes");
  CHECK(decoder.failed());
  CHECK(sink.messages.empty());

  GrpcFrameDecoder huge(100);
  Status huge_status = huge.decode(prefixOnly(1, 0xFFFFFFFF), sink);
  CHECK(huge_status.code() == StatusCode::ResourceExhausted);
  CHECK(huge_status.message() == "grpc message of 4294967295 bytes exceeds the limit of 100 bytes");
}

TEST_CASE("a message exactly at the limit is accepted", "[frame_decoder]") {
  GrpcFrameDecoder decoder(100);
  RecordingSink sink;
  REQUIRE(decoder.decode(frame(std::string(100, 'a')), sink).isOk());
  REQUIRE(sink.messages.size() == 1);
  CHECK(sink.messages[0].payload.size() == 100);
}

TEST_CASE("finish reports a stream that ended inside a message", "[frame_decoder]") {
  GrpcFrameDecoder decoder(1024);
  RecordingSink sink;
  CHECK(decoder.finish().isOk());  // nothing received is a clean end

  SECTION("inside the prefix") {
    REQUIRE(decoder.decode(frame("abcdefghij").substr(0, 3), sink).isOk());
    CHECK(decoder.bufferedBytes() == 3);
    Status status = decoder.finish();
    CHECK(status.code() == StatusCode::Internal);
    CHECK_THAT(status.message(), Catch::Contains("3 of 5 bytes"));
  }
  SECTION("inside the payload") {
    REQUIRE(decoder.decode(frame("abcdefghij").substr(0, 9), sink).isOk());
    CHECK(decoder.bufferedBytes() == 9);
    Status status = decoder.finish();
    CHECK(status.code() == StatusCode::Internal);
    CHECK_THAT(status.message(), Catch::Contains("4 of 10 payload bytes"));
  }
  SECTION("at a message boundary") {
    REQUIRE(decoder.decode(frame("abcdefghij"), sink).isOk());
    CHECK(decoder.finish().isOk());
  }
  CHECK_FALSE(decoder.failed());  // finish reports, it does not fail the decoder
}

TEST_CASE("a sink returning false stops decoding and drops the rest", "[frame_decoder]") {
  GrpcFrameDecoder decoder(1024);
  RecordingSink sink(/*stop_after=*/1);
  REQUIRE(decoder.decode(frame("first") + frame("second") + frame("third"), sink).isOk());
  REQUIRE(sink.messages.size() == 1);
  CHECK(sink.messages[0].payload == "first");
  CHECK(decoder.bufferedBytes() == 0);

  // The rest of that chunk is gone, so later bytes cannot be framed: dropped too.
  REQUIRE(decoder.decode(frame("fourth"), sink).isOk());
  CHECK(sink.messages.size() == 1);
  CHECK(decoder.finish().isOk());
  CHECK_FALSE(decoder.failed());
}

}  // namespace sluice

namespace sluice {

TEST_CASE("a message being reassembled holds at most its own size", "[frame_decoder]") {
  // heldBytes is what max_incomplete_request_bytes / _response_bytes count: a
  // 3 MiB message arriving in 16 KiB chunks must not count (or take) 4 MiB,
  // as string doubling would make it; a limit of one max message then holds
  // a max-size message.
  const size_t size = 3u << 20;
  GrpcFrameDecoder decoder(size);
  RecordingSink sink;
  const std::string wire = prefixOnly(0, static_cast<uint32_t>(size)) + std::string(size, 'p');
  size_t most = 0;
  for (size_t at = 0; at < wire.size(); at += 16384) {
    REQUIRE(decoder.decode(std::string_view(wire).substr(at, 16384), sink).isOk());
    if (sink.messages.empty()) most = std::max(most, decoder.heldBytes());
  }
  REQUIRE(sink.messages.size() == 1);
  CHECK(most <= size);
  CHECK(most >= size - 16384);
  CHECK(decoder.heldBytes() == 0);
}

}  // namespace sluice

namespace sluice {

TEST_CASE("a small message split over chunks counts its size, not a large pooled buffer's", "[frame_decoder]") {
  std::string large;
  large.reserve(200 * 1024);
  buffer_pool::release(std::move(large));  // the pool now offers a 200 KiB buffer first
  GrpcFrameDecoder decoder(1 << 20);
  RecordingSink sink;
  const std::string wire = frame(std::string(100, 'm'));
  REQUIRE(decoder.decode(std::string_view(wire).substr(0, 50), sink).isOk());
  CHECK(decoder.heldBytes() <= 100);
  REQUIRE(decoder.decode(std::string_view(wire).substr(50), sink).isOk());
  CHECK(sink.messages.size() == 1);
  CHECK(decoder.heldBytes() == 0);
}

}  // namespace sluice
