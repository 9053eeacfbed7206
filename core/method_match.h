// MethodMatch: which calls a config entry applies to, written the same way
// wherever a filter selects calls by method (router routes, auth, rate_limit
// and fault rules): {"service": "pkg.Svc"}, {"method": "/pkg.Svc/Method"} or
// {"prefix": "/pkg."} or {"regex": "/pkg\\.Svc/(Get|List)"} (RE2, the whole
// path), optionally with "headers" the call's request headers (its metadata)
// must match too. Parsed once with the config, then read-only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/regex.h"

namespace sluice {

class HeaderMap;
class JsonObject;

// {"name": "x-tenant", "exact": "acme"}, {"name": ..., "prefix": "stag"},
// "suffix", "contains", "regex" (RE2, the whole value) or
// {"name": ..., "present": true|false}; "invert": true negates it. A header
// sent several times is matched as its values joined with "," ("; " for
// cookie).
struct HeaderMatch {
  enum class Kind { Exact, Prefix, Suffix, Contains, Regex, Present };
  std::string name;  // lower case, as HTTP/2 carries it
  Kind kind = Kind::Present;
  std::string value;     // Exact, Prefix, Suffix, Contains; Regex: the pattern as written
  std::optional<Regex> regex;  // Regex
  bool present = true;   // Present: whether the header must be there
  bool invert = false;

  bool matches(const HeaderMap& headers) const;
};

struct MethodMatch {
  enum class Kind { Service, Method, Prefix, Regex };
  Kind kind = Kind::Prefix;
  std::string value;  // Regex: the pattern as written
  std::optional<Regex> regex;  // Regex
  std::vector<HeaderMatch> headers;  // every one must match

  // `path` is "/pkg.Svc/Method", `service` its "pkg.Svc", `headers` the
  // request's (pseudo-headers included).
  bool matches(std::string_view path, std::string_view service, const HeaderMap& headers) const;
};

// The first of `rules` whose `match` (an optional MethodMatch; absent matches
// every call) matches the call, or nullptr: the rules of auth, rate_limit and
// fault are tried in order this way.
template <class Rule>
const Rule* firstMatchingRule(const std::vector<Rule>& rules, std::string_view path, std::string_view service,
                              const HeaderMap& headers) {
  for (const Rule& r : rules) {
    if (!r.match || r.match->matches(path, service, headers)) return &r;
  }
  return nullptr;
}

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
