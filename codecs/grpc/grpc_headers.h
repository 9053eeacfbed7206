// Helpers for the gRPC-specific header values: grpc-status, grpc-message
// (percent-encoded), grpc-timeout, and binary (-bin) metadata (base64).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace sluice::grpc_headers {

// "0".."16" -> code. Other numbers (gRPC says: treat as UNKNOWN) -> Unknown;
// nullopt if not a plain decimal number.
std::optional<StatusCode> parseGrpcStatus(std::string_view value);
// A grpc-status value a client can read: a decimal code from 0 to 16.
bool isValidGrpcStatus(std::string_view value);
// "application/grpc", optionally followed by "+format" or parameters.
bool isGrpcContentType(const std::string* content_type);
std::string formatGrpcStatus(StatusCode code);

// grpc-message: percent-encode every byte outside 0x20..0x7E and '%' itself,
// as the gRPC HTTP/2 spec says (UTF-8 bytes are encoded one by one).
std::string percentEncode(std::string_view message);
// Lenient decode: a '%' not followed by two hex digits is kept as is.
std::string percentDecode(std::string_view value);
// At most `max_bytes` of `message`, cut before a UTF-8 sequence rather than
// inside one, with " [truncated]" added when anything was cut. Messages the
// gateway makes can quote client input (a path, a grpc-timeout): uncut, one
// percent-encoded could outgrow the 64 KiB header block HTTP/2 can send.
std::string truncateMessage(std::string_view message, size_t max_bytes);

// grpc-timeout: 1 to 8 ASCII digits and a unit (H M S m u n). nullopt if malformed.
std::optional<std::chrono::nanoseconds> parseTimeout(std::string_view value);
// The shortest exact-or-rounded-up encoding with at most 8 digits.
std::string formatTimeout(std::chrono::nanoseconds timeout);
// Rounded up to three significant digits (less than 1% later), in the
// coarsest unit that holds it exactly: "10S" for 9.996 s. What the proxy
// sends upstream: the calls of one client, whose deadlines are alike, then
// carry the same few values, which HPACK sends as index hits instead of a
// new literal per call that would also evict the backend's table entries.
std::string formatTimeoutCoarse(std::chrono::nanoseconds timeout);

// grpc-retry-pushback-ms, a server's word on retrying the call it failed
// (gRFC A6): a non-negative decimal number is the delay to wait before the
// next attempt (saturating at the largest int64 milliseconds); anything
// else, a negative number included, means "do not retry" (nullopt).
inline constexpr std::string_view kRetryPushbackHeader = "grpc-retry-pushback-ms";
std::optional<std::chrono::milliseconds> parseRetryPushback(std::string_view value);

// Metadata keys ending in "-bin" carry base64 values on the wire. Inline:
// every header of every call is asked.
inline bool isBinaryHeader(std::string_view name) {
  const size_t n = name.size();
  return n >= 4 && name[n - 1] == 'n' && name[n - 2] == 'i' && name[n - 3] == 'b' && name[n - 4] == '-';
}
// Standard base64 with padding (what gRPC implementations send).
std::string base64Encode(std::string_view bytes);
// Accepts padded and unpadded standard base64; nullopt on invalid input.
std::optional<std::string> base64Decode(std::string_view text);
// Whether a -bin value is base64 as gRPC implementations read it: the
// standard alphabet, padded or not, '=' only at the end (at most two, and
// then a whole 4-character group), and never one character past a group.
// gRPC's C-core ends the whole connection over one that is not (every other
// call on it fails); grpc-go fails the call INTERNAL. Bits left over in the
// last character are not checked: neither library does.
bool isBase64Value(std::string_view text);

// The value of metadata `key` as one caller's key (a rate limit's bucket, a
// hash_header's draw), however the caller spelled it, so that spelling it
// another way neither earns a fresh bucket nor moves the call elsewhere:
// without the blanks around it (auth trims an API key too), a -bin value as
// the bytes it carries (base64, padded or not: gRPC libraries differ), an
// `authorization` value as its scheme in lower case and its credentials
// (auth takes "Bearer" in any case, with any spaces).
std::string callerKeyValue(std::string_view key, std::string_view value);

}  // namespace sluice::grpc_headers
