#include "codecs/grpc/grpc_headers.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <limits>

#include <sodium.h>

#include "core/headers.h"

namespace sluice::grpc_headers {
namespace {

constexpr size_t kMaxTimeoutDigits = 8;
constexpr int64_t kMaxTimeoutValue = 99'999'999;

struct TimeoutUnit {
  char symbol;
  int64_t nanos;
};
// Finest first: formatTimeout takes the first unit the value fits in.
constexpr std::array<TimeoutUnit, 6> kTimeoutUnits = {{
    {'n', 1},
    {'u', 1'000},
    {'m', 1'000'000},
    {'S', 1'000'000'000},
    {'M', 60'000'000'000},
    {'H', 3'600'000'000'000},
}};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// n / d rounded up (n > 0, d > 0): a timeout is never encoded shorter.
int64_t divideRoundingUp(int64_t n, int64_t d) { return n / d + (n % d != 0 ? 1 : 0); }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// sodium_init() is idempotent and thread-safe; the base64 helpers do not need
// it today, but libsodium documents it as required before any other call.
void ensureSodium() {
  [[maybe_unused]] static const int kInit = sodium_init();
}

}  // namespace

std::optional<StatusCode> parseGrpcStatus(std::string_view value) {
  if (value.empty() || value.size() > 3) return std::nullopt;
  int code = 0;
  for (char c : value) {
    if (!isDigit(c)) return std::nullopt;
    code = code * 10 + (c - '0');
  }
  if (code > static_cast<int>(StatusCode::Unauthenticated)) return StatusCode::Unknown;
  return static_cast<StatusCode>(code);
}

bool isValidGrpcStatus(std::string_view value) {
  if (value.empty() || value.size() > 2 || !isDigit(value[0]) || (value.size() == 2 && !isDigit(value[1]))) {
    return false;
  }
  const int code = value.size() == 1 ? value[0] - '0' : (value[0] - '0') * 10 + (value[1] - '0');
  return code <= static_cast<int>(StatusCode::Unauthenticated);
}

bool isGrpcContentType(const std::string* content_type) {
  if (content_type == nullptr) return false;
  std::string_view v = *content_type;
  constexpr std::string_view kGrpc = "application/grpc";
  if (v.size() < kGrpc.size()) return false;
  // A media type's type and subtype are case-insensitive (RFC 9110 8.3.1):
  // gRPC servers take "Application/GRPC" too. Lowercase, as every client
  // sends it, is one compare.
  const std::string_view type = v.substr(0, kGrpc.size());
  if (type != kGrpc && !equalsLowercaseAscii(type, kGrpc)) return false;
  return v.size() == kGrpc.size() || v[kGrpc.size()] == '+' || v[kGrpc.size()] == ';';
}

std::string formatGrpcStatus(StatusCode code) { return std::to_string(static_cast<int>(code)); }

std::string percentEncode(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (size_t i = 0; i < message.size(); ++i) {
    const char c = message[i];
    auto b = static_cast<unsigned char>(c);
    // A space is encoded at either end too: HTTP/2 forbids a field value that
    // begins or ends with one (RFC 9113 8.2.1), and strict peers reset the
    // stream that carries it.
    const bool edge_space = b == ' ' && (i == 0 || i + 1 == message.size());
    if (b < 0x20 || b > 0x7E || b == '%' || edge_space) {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0x0F];
    } else {
      out += c;
    }
  }
  return out;
}

std::string truncateMessage(std::string_view message, size_t max_bytes) {
  if (message.size() <= max_bytes) return std::string(message);
  size_t cut = max_bytes;
  // Back off over continuation bytes (10xxxxxx) to the start of a sequence.
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  return std::string(message.substr(0, cut)) + " [truncated]";
}

std::string percentDecode(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size() && hexValue(value[i + 1]) >= 0 &&
        hexValue(value[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(value[i + 1]) * 16 + hexValue(value[i + 2]));
      i += 2;
    } else {
      out += value[i];
    }
  }
  return out;
}

std::optional<std::chrono::nanoseconds> parseTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > kMaxTimeoutDigits + 1) return std::nullopt;
  std::string_view digits = value.substr(0, value.size() - 1);
  int64_t count = 0;
  for (char c : digits) {
    if (!isDigit(c)) return std::nullopt;
    count = count * 10 + (c - '0');
  }
  for (const TimeoutUnit& unit : kTimeoutUnits) {
    if (unit.symbol != value.back()) continue;
    // 99999999H does not fit in int64 nanoseconds; such a deadline is
    // centuries away, so saturating loses nothing.
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    if (count > kMax / unit.nanos) return std::chrono::nanoseconds(kMax);
    return std::chrono::nanoseconds(count * unit.nanos);
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> parseRetryPushback(std::string_view value) {
  if (value.empty()) return std::nullopt;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t ms = 0;
  for (char c : value) {
    if (!isDigit(c)) return std::nullopt;
    ms = ms > (kMax - 9) / 10 ? kMax : ms * 10 + (c - '0');
  }
  return std::chrono::milliseconds(ms);
}

std::string formatTimeout(std::chrono::nanoseconds timeout) {
  // A zero or negative timeout has already expired; "1n" says so without
  // being mistaken for "no deadline" by a peer that treats 0 specially.
  if (timeout.count() <= 0) return "1n";
  int64_t ns = timeout.count();
  for (const TimeoutUnit& unit : kTimeoutUnits) {
    // Round up: the encoded deadline may be later than asked, never earlier.
    int64_t count = divideRoundingUp(ns, unit.nanos);
    if (count <= kMaxTimeoutValue) return std::to_string(count) + unit.symbol;
  }
  // Unreachable: int64 nanoseconds is under 2.6 million hours.
  return std::to_string(kMaxTimeoutValue) + 'H';
}

std::string formatTimeoutCoarse(std::chrono::nanoseconds timeout) {
  int64_t ns = timeout.count();
  // Past 999e14 ns (three years) the rounded value could overflow; the exact
  // encoding is as coarse there anyway.
  constexpr int64_t kLargest = 999 * 100'000'000'000'000;
  if (ns <= 0 || ns > kLargest) return formatTimeout(timeout);
  int64_t scale = 1;
  while (divideRoundingUp(ns, scale) > 999) scale *= 10;
  const int64_t rounded = divideRoundingUp(ns, scale) * scale;
  // Coarsest decimal unit first (S, m, u; n takes the rest). At most 999
  // followed by zeros, so each fits in 8 digits: seconds hold up to 999e14 ns,
  // and a finer unit is only reached when the scale is under a thousand of it.
  for (size_t i = 3; i > 0; --i) {
    const TimeoutUnit& unit = kTimeoutUnits[i];
    if (rounded % unit.nanos == 0) return std::to_string(rounded / unit.nanos) + unit.symbol;
  }
  return std::to_string(rounded) + kTimeoutUnits[0].symbol;
}

std::string base64Encode(std::string_view bytes) {
  ensureSodium();
  const size_t encoded_len = sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(encoded_len, '\0');  // includes libsodium's terminating NUL
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(encoded_len - 1);
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  ensureSodium();
  // Some senders omit padding, so strip it and decode as unpadded. Padding
  // that is present must still complete a 4-character group.
  const bool padded = text.ends_with('=');
  if (padded && text.size() % 4 != 0) return std::nullopt;
  for (int i = 0; i < 2 && text.ends_with('='); ++i) text.remove_suffix(1);

  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t out_len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &out_len, &end,
                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  out.resize(out_len);
  return out;
}

bool isBase64Value(std::string_view text) {
  const bool padded = text.ends_with('=');
  if (padded && text.size() % 4 != 0) return false;
  for (int i = 0; i < 2 && text.ends_with('='); ++i) text.remove_suffix(1);
  if (text.size() % 4 == 1) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
  });
}

std::string callerKeyValue(std::string_view key, std::string_view value) {
  value = trimBlanks(value);
  if (isBinaryHeader(key)) {
    if (auto bytes = base64Decode(value)) return std::move(*bytes);
    return std::string(value);
  }
  if (key != "authorization") return std::string(value);
  const size_t space = value.find_first_of(" \t");
  if (space == std::string_view::npos) return std::string(value);
  std::string out(value.substr(0, space));
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  out += ' ';
  out += trimBlanks(value.substr(space + 1));
  return out;
}

}  // namespace sluice::grpc_headers
