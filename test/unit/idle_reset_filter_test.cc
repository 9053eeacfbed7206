#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "codecs/http2/idle_reset_filter.h"

namespace sluice::http2 {
namespace {

std::string frame(uint8_t type, uint32_t stream_id, const std::string& payload, uint8_t flags = 0) {
  std::string f;
  const auto len = static_cast<uint32_t>(payload.size());
  f += static_cast<char>(len >> 16);
  f += static_cast<char>(len >> 8);
  f += static_cast<char>(len);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>(stream_id >> 24);
  f += static_cast<char>(stream_id >> 16);
  f += static_cast<char>(stream_id >> 8);
  f += static_cast<char>(stream_id);
  return f + payload;
}

std::string rst(uint32_t stream_id) { return frame(0x3, stream_id, std::string("\0\0\0\x08", 4)); }

// What the filter hands on when `input` arrives cut at `cuts`.
std::string filtered(IdleResetFilter& filter, const std::string& input, std::initializer_list<size_t> cuts) {
  std::string out;
  size_t from = 0;
  auto sink = [&](const uint8_t* p, size_t n) {
    out.append(reinterpret_cast<const char*>(p), n);
    return true;
  };
  for (size_t cut : cuts) {
    filter.feed(reinterpret_cast<const uint8_t*>(input.data()) + from, cut - from, sink);
    from = cut;
  }
  filter.feed(reinterpret_cast<const uint8_t*>(input.data()) + from, input.size() - from, sink);
  return out;
}

TEST_CASE("IdleResetFilter drops only well-formed resets of client streams never opened", "[http2]") {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const std::string kept_before = preface + frame(0x4, 0, "") + frame(0x1, 1, "abc", 0x4);
  const std::string idle5 = rst(5);                         // above every opened stream: dropped
  const std::string open1 = rst(1) + frame(0x0, 1, "hello");  // an opened stream's: kept
  const std::string idle3 = rst(3);                         // 3 > 1, never opened: dropped
  const std::string rest = frame(0x1, 7, "h", 0x4) + rst(5) +      // 5 < 7: closed now, nghttp2's to judge
                           frame(0x3, 9, std::string(5, '\0'));  // malformed: nghttp2 refuses it
  const std::string idle11 = rst(11).substr(0, 11);  // its last bytes still to come: dropped
  const std::string input = kept_before + idle5 + open1 + idle3 + rest + idle11;
  const std::string expected = kept_before + open1 + rest;

  SECTION("in one read") {
    IdleResetFilter filter;
    CHECK(filtered(filter, input, {}) == expected);
    CHECK(filter.dropped() == 3);
  }
  SECTION("cut anywhere, twice") {
    for (size_t i = 0; i <= input.size(); ++i) {
      for (size_t j = i; j <= input.size(); j += 3) {
        IdleResetFilter filter;
        INFO("cuts at " << i << " and " << j);
        REQUIRE(filtered(filter, input, {i, j}) == expected);
        REQUIRE(filter.dropped() == 3);
      }
    }
  }
  SECTION("one byte at a time") {
    IdleResetFilter filter;
    std::string out;
    for (char c : input) {
      filter.feed(reinterpret_cast<const uint8_t*>(&c), 1, [&](const uint8_t* p, size_t n) {
        out.append(reinterpret_cast<const char*>(p), n);
        return true;
      });
    }
    CHECK(out == expected);
  }
}

TEST_CASE("IdleResetFilter leaves a reset inside a header block to nghttp2", "[http2]") {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const std::string open_block = frame(0x1, 1, "ab");  // HEADERS without END_HEADERS
  const std::string continuation = frame(0x9, 1, "c", 0x4);  // END_HEADERS
  // Inside the block: a connection error nghttp2 must see. After it: dropped.
  const std::string input = preface + open_block + rst(5) + continuation + rst(7);
  IdleResetFilter filter;
  CHECK(filtered(filter, input, {}) == preface + open_block + rst(5) + continuation);
  CHECK(filter.dropped() == 1);
}

TEST_CASE("IdleResetFilter stops when its sink does", "[http2]") {
  const std::string input = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + rst(3) + frame(0x4, 0, "");
  IdleResetFilter filter;
  int calls = 0;
  CHECK_FALSE(filter.feed(reinterpret_cast<const uint8_t*>(input.data()), input.size(), [&](const uint8_t*, size_t) {
    ++calls;
    return false;
  }));
  CHECK(calls == 1);  // the preface; nothing after it
}

}  // namespace
}  // namespace sluice::http2
