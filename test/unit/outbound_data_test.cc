#include "codecs/http2/outbound_data.h"

#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "codecs/grpc/frame_decoder.h"

namespace sluice {
namespace {

std::string wire(const Message& m) {
  uint8_t prefix[kGrpcPrefixBytes];
  encodeGrpcPrefix(prefix, m.compressed, static_cast<uint32_t>(m.payload.size()));
  return std::string(reinterpret_cast<const char*>(prefix), kGrpcPrefixBytes) + m.payload;
}

Message message(size_t size, char fill, bool compressed = false) {
  Message m;
  m.compressed = compressed;
  m.payload.assign(size, fill);
  return m;
}

// Takes up to `len` bytes in at most `max_spans` pieces, copies them out, and
// consumes them: what a write of that batch does.
std::string drain(OutboundData& out, size_t len, size_t max_spans) {
  ByteSpan spans[16];
  const size_t ready = out.readable(len, max_spans);
  const size_t n = out.take(ready, spans, max_spans);
  std::string got;
  for (size_t i = 0; i < n; ++i) got.append(reinterpret_cast<const char*>(spans[i].data), spans[i].len);
  REQUIRE(got.size() == ready);
  out.consume(ready);
  return got;
}

}  // namespace

TEST_CASE("OutboundData: small and large messages, packed or not, come out whole and in order", "[outbound]") {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    OutboundData out(1 << 30, 1 << 29);
    std::string expected;
    std::string got;
    for (int i = 0; i < 400; ++i) {
      // Mostly small (packed behind others), sometimes empty or large.
      const int kind = static_cast<int>(rng() % 10);
      const size_t size = kind == 0 ? 0 : kind == 1 ? 1000 + rng() % 70000 : rng() % 300;
      Message m = message(size, static_cast<char>('a' + i % 26), rng() % 5 == 0);
      expected += wire(m);
      out.appendMessage(std::move(m));
      // Writes of every size, some between appends (the packed tail grows
      // after part of it was taken and written).
      if (rng() % 3 == 0) got += drain(out, 1 + rng() % 40000, 1 + rng() % 16);
    }
    while (!out.empty()) got += drain(out, 1 + rng() % 40000, 1 + rng() % 16);
    REQUIRE(got.size() == expected.size());
    REQUIRE(got == expected);
  }
}

TEST_CASE("OutboundData: queued small messages share buffers and take few pieces", "[outbound]") {
  OutboundData out(1 << 30, 1 << 29);
  out.appendMessage(message(100, 'x'));  // alone in the queue: its own chunk
  for (int i = 0; i < 1000; ++i) out.appendMessage(message(0, 'y'));
  CHECK(out.size() == 105 + 1000 * kGrpcPrefixBytes);
  // 105 bytes in two pieces (prefix, payload) and the 5,000 packed bytes in one.
  ByteSpan spans[16];
  CHECK(out.readable(1 << 20, 16) == out.size());
  CHECK(out.take(out.size(), spans, 16) == 3);
}

TEST_CASE("OutboundData: watermarks count the bytes of packed messages", "[outbound]") {
  OutboundData out(1000, 500);
  std::vector<bool> events;
  out.setWatermarkCallback([&](bool above) { events.push_back(above); });
  out.appendMessage(message(10, 'a'));
  for (int i = 0; i < 200; ++i) out.appendMessage(message(0, 'b'));  // 1,015 bytes in all
  REQUIRE(events == std::vector<bool>{true});
  drain(out, 600, 16);
  CHECK(events == std::vector<bool>{true, false});
}

}  // namespace sluice
