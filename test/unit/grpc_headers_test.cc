#include "codecs/grpc/grpc_headers.h"

#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace sluice::grpc_headers {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

}  // namespace

TEST_CASE("parseTimeout accepts every unit", "[grpc_headers]") {
  CHECK(parseTimeout("2H") == nanoseconds(hours(2)));
  CHECK(parseTimeout("3M") == nanoseconds(minutes(3)));
  CHECK(parseTimeout("4S") == nanoseconds(seconds(4)));
  CHECK(parseTimeout("5m") == nanoseconds(milliseconds(5)));
  CHECK(parseTimeout("6u") == nanoseconds(microseconds(6)));
  CHECK(parseTimeout("7n") == nanoseconds(7));
  CHECK(parseTimeout("0n") == nanoseconds(0));
  CHECK(parseTimeout("007S") == nanoseconds(seconds(7)));
}

TEST_CASE("parseTimeout takes at most 8 digits", "[grpc_headers]") {
  CHECK(parseTimeout("99999999n") == nanoseconds(99'999'999));
  CHECK(parseTimeout("99999999S") == nanoseconds(seconds(99'999'999)));
  CHECK_FALSE(parseTimeout("100000000n").has_value());
  // 99999999 hours overflows int64 nanoseconds: saturated, not wrapped.
  CHECK(parseTimeout("99999999H") == nanoseconds::max());
}

TEST_CASE("parseTimeout rejects malformed values", "[grpc_headers]") {
  for (const char* bad : {"", "S", "1", "12", "1s", "1h", "1x", "-1S", "+1S", " 1S", "1S ", "1.5S",
                          "1 S", "1SS", "0x1S"}) {
    INFO("value '" << bad << "'");
    CHECK_FALSE(parseTimeout(bad).has_value());
  }
}

TEST_CASE("formatTimeout picks the finest unit that fits in 8 digits", "[grpc_headers]") {
  CHECK(formatTimeout(nanoseconds(1)) == "1n");
  CHECK(formatTimeout(nanoseconds(99'999'999)) == "99999999n");
  CHECK(formatTimeout(nanoseconds(100'000'000)) == "100000u");
  CHECK(formatTimeout(nanoseconds(100'000'001)) == "100001u");  // rounded up
  CHECK(formatTimeout(seconds(30)) == "30000000u");
  CHECK(formatTimeout(seconds(1000)) == "1000000m");
  CHECK(formatTimeout(hours(24 * 365)) == "31536000S");
  CHECK(formatTimeout(nanoseconds::max()) == "2562048H");
  CHECK(formatTimeout(nanoseconds(0)) == "1n");
  CHECK(formatTimeout(nanoseconds(-5)) == "1n");
}

// Positive timeouts spread over every magnitude, from nanoseconds to centuries.
std::vector<nanoseconds> timeoutsOfEveryMagnitude(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<nanoseconds> out;
  for (int i = 0; i < 10000; ++i) {
    const int64_t limit = int64_t{1} << (rng() % 63);
    out.emplace_back(1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(limit)));
  }
  return out;
}

// `text`, made from `timeout`, read back: it must parse, and never be earlier.
nanoseconds readBack(const std::string& text, nanoseconds timeout) {
  INFO(timeout.count() << "ns -> " << text);
  auto parsed = parseTimeout(text);
  REQUIRE(parsed.has_value());
  REQUIRE(*parsed >= timeout);
  return *parsed;
}

TEST_CASE("formatTimeout round trips and never shortens the deadline", "[grpc_headers]") {
  for (nanoseconds timeout : timeoutsOfEveryMagnitude(42)) {
    const std::string text = formatTimeout(timeout);
    INFO(timeout.count() << "ns -> " << text);
    const nanoseconds parsed = readBack(text, timeout);
    // Rounding up costs less than one unit, and a coarser unit is only chosen
    // when the finer one (at most 1000x smaller) overflowed 8 digits, so the
    // value is >= 100000 units: the deadline moves by at most 1e-5 of itself.
    REQUIRE(static_cast<double>((parsed - timeout).count()) <=
            static_cast<double>(timeout.count()) * 1e-5);
  }
}

TEST_CASE("formatTimeoutCoarse keeps three significant digits in the coarsest exact unit", "[grpc_headers]") {
  CHECK(formatTimeoutCoarse(nanoseconds(9'996'000'000)) == "10S");
  CHECK(formatTimeoutCoarse(nanoseconds(9'985'000'000)) == "9990m");
  CHECK(formatTimeoutCoarse(nanoseconds(998'123'456)) == "999m");
  CHECK(formatTimeoutCoarse(seconds(30)) == "30S");
  CHECK(formatTimeoutCoarse(milliseconds(100)) == "100m");
  CHECK(formatTimeoutCoarse(nanoseconds(123'456)) == "124u");
  CHECK(formatTimeoutCoarse(nanoseconds(1'001)) == "1010n");
  CHECK(formatTimeoutCoarse(nanoseconds(999)) == "999n");
  CHECK(formatTimeoutCoarse(nanoseconds(1)) == "1n");
  CHECK(formatTimeoutCoarse(hours(24 * 365)) == "31600000S");
  // Expired, and past the range where rounding could overflow: as formatTimeout.
  CHECK(formatTimeoutCoarse(nanoseconds(0)) == "1n");
  CHECK(formatTimeoutCoarse(nanoseconds(-5)) == "1n");
  CHECK(formatTimeoutCoarse(nanoseconds::max()) == "2562048H");
}

TEST_CASE("formatTimeoutCoarse gives one value for the deadlines of calls made alike", "[grpc_headers]") {
  // A client's 10 s deadline reaches the proxy with a little spent: every
  // remainder within the last 10 ms is the same text, so HPACK indexes it.
  for (int64_t spent_us = 0; spent_us < 10'000; spent_us += 7) {
    INFO("spent " << spent_us << " us");
    REQUIRE(formatTimeoutCoarse(seconds(10) - microseconds(spent_us)) == "10S");
  }
}

TEST_CASE("formatTimeoutCoarse never shortens the deadline and lengthens it by under 1%", "[grpc_headers]") {
  for (nanoseconds timeout : timeoutsOfEveryMagnitude(7)) {
    const std::string text = formatTimeoutCoarse(timeout);
    INFO(timeout.count() << "ns -> " << text);
    const nanoseconds parsed = readBack(text, timeout);
    if (timeout > hours(24 * 365 * 3)) continue;  // the exact encoding's range
    REQUIRE(static_cast<double>((parsed - timeout).count()) < static_cast<double>(timeout.count()) * 0.01);
    std::string digits = text.substr(0, text.size() - 1);
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    REQUIRE(digits.size() <= 3);
  }
}

TEST_CASE("percentEncode escapes control, non-ASCII and '%' bytes, and a space at either end", "[grpc_headers]") {
  CHECK(percentEncode("plain text ~!") == "plain text ~!");
  CHECK(percentEncode("100%") == "100%25");
  CHECK(percentEncode("a\nb\x7f") == "a%0Ab%7F");
  CHECK(percentEncode("caf\xc3\xa9") == "caf%C3%A9");     // é
  CHECK(percentEncode("\xe2\x82\xac") == "%E2%82%AC");    // €
  CHECK(percentEncode(std::string("\0", 1)) == "%00");
  // A space at either end, which HTTP/2 forbids in a field value; inside, none.
  CHECK(percentEncode(" a b ") == "%20a b%20");
  CHECK(percentEncode(" ") == "%20");
  CHECK(percentEncode("  ") == "%20%20");
}

TEST_CASE("percent-encoding round trips", "[grpc_headers]") {
  for (std::string message : {"", " ", " padded ", "%", "%%25", "50% off: \xe2\x82\xac 5, caf\xc3\xa9\n",
                              "\xf0\x9f\x98\x80 emoji"}) {
    CHECK(percentDecode(percentEncode(message)) == message);
  }
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  CHECK(percentDecode(percentEncode(all_bytes)) == all_bytes);
}

TEST_CASE("percentDecode is lenient", "[grpc_headers]") {
  CHECK(percentDecode("caf%c3%a9") == "caf\xc3\xa9");  // lower-case hex
  CHECK(percentDecode("%") == "%");
  CHECK(percentDecode("100%") == "100%");
  CHECK(percentDecode("%4") == "%4");
  CHECK(percentDecode("%zz%41") == "%zzA");
  CHECK(percentDecode("%%41") == "%A");
  CHECK(percentDecode("%4g") == "%4g");
}

TEST_CASE("truncateMessage cuts long messages between UTF-8 sequences and says so", "[grpc_headers]") {
  CHECK(truncateMessage("short", 10) == "short");
  CHECK(truncateMessage("exactly10!", 10) == "exactly10!");
  CHECK(truncateMessage("abcdefghijkl", 4) == "abcd [truncated]");
  // "é" is 2 bytes (C3 A9): a cut after its first byte backs off before it.
  CHECK(truncateMessage("abc\xC3\xA9" "def", 4) == "abc [truncated]");
  CHECK(truncateMessage("abc\xC3\xA9" "def", 5) == "abc\xC3\xA9 [truncated]");
  // "€" is 3 bytes (E2 82 AC).
  CHECK(truncateMessage("\xE2\x82\xAC\xE2\x82\xAC", 5) == "\xE2\x82\xAC [truncated]");
}

TEST_CASE("isBinaryHeader looks for the -bin suffix", "[grpc_headers]") {
  CHECK(isBinaryHeader("trace-bin"));
  CHECK(isBinaryHeader("grpc-status-details-bin"));
  CHECK_FALSE(isBinaryHeader("binary"));
  CHECK_FALSE(isBinaryHeader("trace-bin-x"));
}

TEST_CASE("base64Encode writes padded standard base64", "[grpc_headers]") {
  CHECK(base64Encode("") == "");
  CHECK(base64Encode("f") == "Zg==");
  CHECK(base64Encode("fo") == "Zm8=");
  CHECK(base64Encode("foo") == "Zm9v");
  CHECK(base64Encode("\xfb\xff") == "+/8=");
}

TEST_CASE("base64Decode accepts padded and unpadded input", "[grpc_headers]") {
  CHECK(base64Decode("") == std::string());
  CHECK(base64Decode("Zg==") == std::string("f"));
  CHECK(base64Decode("Zg") == std::string("f"));
  CHECK(base64Decode("Zm8=") == std::string("fo"));
  CHECK(base64Decode("Zm8") == std::string("fo"));
  CHECK(base64Decode("Zm9v") == std::string("foo"));
  CHECK(base64Decode("+/8=") == std::string("\xfb\xff"));

  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  for (size_t n = 0; n <= all_bytes.size(); n += 37) {
    CHECK(base64Decode(base64Encode(all_bytes.substr(0, n))) == all_bytes.substr(0, n));
  }
}

TEST_CASE("isBase64Value takes what gRPC libraries read as base64, padded or not", "[grpc_headers]") {
  for (const char* ok : {"", "Zg==", "Zg", "Zm8=", "Zm8", "Zm9v", "+/8=", "+/+/", "AQIDBAU", "AQIDBAU="}) {
    INFO(ok);
    CHECK(isBase64Value(ok));
  }
  // One character past a group, '=' inside or too many, a partial group
  // padded, another alphabet (URL-safe), blanks, bytes past ASCII.
  for (const char* bad : {"Y", "YWJjZ", "YWJj=ZA", "Zg===", "YQ=", "Zm8==", "=", "====", "YQ-_", "Y Q", " Zg==",
                          "Zg\t", "Zm9\xc3\xa9", "Zm9v\n"}) {
    INFO(bad);
    CHECK_FALSE(isBase64Value(bad));
  }
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  for (size_t n = 0; n <= all_bytes.size(); n += 37) {
    const std::string padded = base64Encode(all_bytes.substr(0, n));
    CHECK(isBase64Value(padded));
    CHECK(isBase64Value(padded.substr(0, padded.find('='))));
  }
}

TEST_CASE("callerKeyValue is one value however the caller spelled it", "[grpc_headers]") {
  // -bin: the bytes, padded or not (C-core sends unpadded, others pad).
  CHECK(callerKeyValue("x-user-bin", "AQIDBAU=") == std::string("\x01\x02\x03\x04\x05"));
  CHECK(callerKeyValue("x-user-bin", "AQIDBAU") == std::string("\x01\x02\x03\x04\x05"));
  CHECK(callerKeyValue("x-user-bin", " AQIDBAU ") == std::string("\x01\x02\x03\x04\x05"));
  CHECK(callerKeyValue("x-user-bin", "not base64!") == "not base64!");  // kept as it came
  // Others: without the blanks around them; only authorization's scheme folds case.
  CHECK(callerKeyValue("x-user", " alice\t") == "alice");
  CHECK(callerKeyValue("x-user", "Alice") == "Alice");
  CHECK(callerKeyValue("x-user", "AQIDBAU=") == "AQIDBAU=");
  CHECK(callerKeyValue("authorization", "BEARER   tok") == "bearer tok");
  CHECK(callerKeyValue("authorization", "Bearer tok") == "bearer tok");
  CHECK(callerKeyValue("authorization", "Bearer TOK") != callerKeyValue("authorization", "Bearer tok"));
}

TEST_CASE("base64Decode rejects invalid input", "[grpc_headers]") {
  for (const char* bad : {"Z", "Zm9vY", "Zg=", "Zg===", "Zm9v=", "=", "==", "Zg==Zg==", "Zm 9v",
                          "Zm9v\n", "Zm-_", "Zh==", "Zm9=", "Zm9v!"}) {
    INFO("input '" << bad << "'");
    CHECK_FALSE(base64Decode(bad).has_value());
  }
}

TEST_CASE("parseGrpcStatus accepts plain decimal codes only", "[grpc_headers]") {
  CHECK(parseGrpcStatus("0") == StatusCode::Ok);
  CHECK(parseGrpcStatus("14") == StatusCode::Unavailable);
  CHECK(parseGrpcStatus("16") == StatusCode::Unauthenticated);
  CHECK(parseGrpcStatus("17") == StatusCode::Unknown);
  CHECK(parseGrpcStatus("999") == StatusCode::Unknown);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1a", "0x1", "1234", "OK"}) {
    INFO("value '" << bad << "'");
    CHECK_FALSE(parseGrpcStatus(bad).has_value());
  }
}

TEST_CASE("formatGrpcStatus writes the decimal code", "[grpc_headers]") {
  CHECK(formatGrpcStatus(StatusCode::Ok) == "0");
  CHECK(formatGrpcStatus(StatusCode::Unavailable) == "14");
  for (int code = 0; code <= 16; ++code) {
    CHECK(parseGrpcStatus(formatGrpcStatus(static_cast<StatusCode>(code))) ==
          static_cast<StatusCode>(code));
  }
}

TEST_CASE("grpc-retry-pushback-ms: a delay, or do not retry", "[grpc_headers]") {
  using std::chrono::milliseconds;
  CHECK(parseRetryPushback("0") == milliseconds(0));
  CHECK(parseRetryPushback("1500") == milliseconds(1500));
  CHECK(parseRetryPushback("99999999999999999999999") == milliseconds(std::numeric_limits<int64_t>::max()));
  for (const char* refused : {"", "-1", "+5", " 5", "5 ", "1.5", "soon"}) {
    INFO(refused);
    CHECK_FALSE(parseRetryPushback(refused).has_value());
  }
}

}  // namespace sluice::grpc_headers
