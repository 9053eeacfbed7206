// MethodMatch: which calls a config entry applies to, written the same way
// wherever a filter selects calls by method (router routes, auth and
// rate_limit rules): {"service": "pkg.Svc"}, {"method": "/pkg.Svc/Method"} or
// {"prefix": "/pkg."}. Parsed once with the config, then read-only.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

class JsonObject;

struct MethodMatch {
  enum class Kind { Service, Method, Prefix };
  Kind kind = Kind::Prefix;
  std::string value;

  // `path` is "/pkg.Svc/Method", `service` its "pkg.Svc".
  bool matches(std::string_view path, std::string_view service) const;
};

// The characters of a service or method name in a gRPC path: those of
// protobuf identifiers and the dots between them, and '-'. The gateway
// refuses calls to any other path (a '?', '%' or space would let something
// behind it serve another method than the one routes and rules judged), and
// a match naming another could never match.
constexpr bool isMethodNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

// Reads the match object at `key` of `parent`. Every mistake (not exactly one
// form, a malformed name) goes to parent.errors() with its JSON path; then,
// and when an optional key is absent, the result is nullopt.
std::optional<MethodMatch> readMethodMatch(JsonObject& parent, std::string_view key, bool required);

}  // namespace sluice
