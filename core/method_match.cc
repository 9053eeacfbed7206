#include "core/method_match.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/headers.h"
#include "core/json_reader.h"

namespace sluice {
namespace {

// "/pkg.Svc/Method": a leading slash, a service and a method, no more slashes.
bool validMethodPath(std::string_view m) {
  auto slash = m.find('/', 1);
  return m.size() >= 4 && m[0] == '/' && slash != std::string_view::npos && slash > 1 && slash + 1 < m.size() &&
         m.find('/', slash + 1) == std::string_view::npos;
}

// Only name characters, and '/' where `slashes` allows.
bool onlyNameChars(std::string_view s, bool slashes) {
  return std::all_of(s.begin(), s.end(), [&](char c) { return isMethodNameChar(c) || (slashes && c == '/'); });
}

// "." and "..": a call whose path has one as its service or method is
// refused before any filter (DownstreamStream), so no match may name one.
bool dotSegment(std::string_view s) { return s == "." || s == ".."; }

// What a value with other characters gets told.
std::string badCharacters(std::string_view value, std::string_view expected) {
  if (value.find('*') != std::string_view::npos) return "wildcards are not supported; use \"prefix\" or \"regex\"";
  return fmt::format("{}; names hold only letters, digits, '_', '.' and '-' (a call to any other path is refused)",
                     expected);
}

// Connection-specific headers: nghttp2 refuses a request carrying one, so a
// match on it would silently never hold.
bool neverDelivered(std::string_view name) {
  return isConnectionSpecificHeader(name);
}

// One entry of "headers" at `path`; mistakes go to `errors`.
std::optional<HeaderMatch> readHeaderMatch(const nlohmann::json& value, const std::string& path,
                                           ConfigErrors& errors) {
  JsonObject h(value, path, errors);
  const size_t errors_before = errors.size();
  auto name = h.string("name", true);
  auto exact = h.string("exact");
  auto prefix = h.string("prefix");
  auto suffix = h.string("suffix");
  auto contains = h.string("contains");
  auto regex = h.string("regex");
  auto present = h.boolean("present");
  auto invert = h.boolean("invert");
  h.finish();
  HeaderMatch out;
  if (name) {
    out.name = headerName(*name);  // "X-Tenant" means x-tenant
    if (out.name != ":authority" && !isValidMetadataKey(out.name)) {
      errors.add(h.pathOf("name"), fmt::format("\"{}\" is not a metadata key (letters, digits, '-', '_', '.') "
                                               "nor \":authority\"", *name));
    } else if (neverDelivered(out.name)) {
      errors.add(h.pathOf("name"), fmt::format("\"{}\" is a connection header HTTP/2 forbids: no call carries it",
                                               out.name));
    }
  }
  // The value forms, in the order of HeaderMatch::Kind (the index is the kind).
  static_assert(static_cast<int>(HeaderMatch::Kind::Exact) == 0 && static_cast<int>(HeaderMatch::Kind::Prefix) == 1 &&
                static_cast<int>(HeaderMatch::Kind::Suffix) == 2 && static_cast<int>(HeaderMatch::Kind::Contains) == 3 &&
                static_cast<int>(HeaderMatch::Kind::Regex) == 4);
  const std::pair<const char*, std::optional<std::string>*> forms[] = {
      {"exact", &exact}, {"prefix", &prefix}, {"suffix", &suffix}, {"contains", &contains}, {"regex", &regex}};
  int given = present ? 1 : 0;
  for (const auto& [key, v] : forms) given += v->has_value() ? 1 : 0;
  if (given != 1) {
    errors.add(path, "give exactly one of \"exact\", \"prefix\", \"suffix\", \"contains\", \"regex\" or \"present\"");
  } else if (present) {
    out.kind = HeaderMatch::Kind::Present;
    out.present = *present;
  } else {
    size_t form = 0;
    while (!forms[form].second->has_value()) ++form;
    const std::string key = forms[form].first;
    out.kind = static_cast<HeaderMatch::Kind>(form);
    out.value = std::move(**forms[form].second);
    if (out.name.ends_with("-bin")) {
      errors.add(h.pathOf(key), "a -bin value is base64 that may be sent padded or not: match it with \"present\"");
    } else if (out.value.empty() && (out.kind == HeaderMatch::Kind::Prefix || out.kind == HeaderMatch::Kind::Suffix ||
                                     out.kind == HeaderMatch::Kind::Contains)) {
      errors.add(h.pathOf(key), "an empty " + key + " matches any value: use \"present\": true");
    } else if (out.kind == HeaderMatch::Kind::Regex) {
      std::string error;
      out.regex = Regex::compile(out.value, error);
      if (!out.regex) errors.add(h.pathOf(key), error);
    } else if (!std::all_of(out.value.begin(), out.value.end(), [](char c) { return c >= 0x20 && c <= 0x7e; })) {
      errors.add(h.pathOf(key), "a header value holds only printable ASCII: this one could never match");
    }
  }
  out.invert = invert.value_or(false);
  if (errors.size() != errors_before) return std::nullopt;
  return out;
}

}  // namespace

bool HeaderMatch::matches(const HeaderMap& request) const {
  // A header sent several times is matched as one value, its values joined
  // with "," in order (as Envoy does, and as HTTP folds them): "any value
  // matches" would let a client slip past an inverted match by adding a
  // second value. A request without :authority (nghttp2 accepts a "host"
  // header instead) is matched on its host.
  const std::string* first = nullptr;
  std::string joined;
  auto gather = [&](std::string_view field) {
    for (const Header& h : request) {
      if (h.name != field) continue;
      if (first == nullptr) {
        first = &h.value;
      } else {
        if (joined.empty()) joined = *first;
        joined += field == "cookie" ? "; " : ",";  // cookie crumbs rejoin as one header (RFC 9113 8.2.3)
        joined += h.value;
      }
    }
  };
  gather(name);
  if (first == nullptr && name == ":authority") gather("host");
  bool matched = false;
  if (kind == Kind::Present) {
    matched = (first != nullptr) == present;
  } else if (first == nullptr) {
    matched = false;
  } else {
    const std::string_view seen = joined.empty() ? std::string_view(*first) : std::string_view(joined);
    switch (kind) {
      case Kind::Exact: matched = seen == value; break;
      case Kind::Prefix: matched = seen.starts_with(value); break;
      case Kind::Suffix: matched = seen.ends_with(value); break;
      case Kind::Contains: matched = seen.find(value) != std::string_view::npos; break;
      case Kind::Regex: matched = regex->fullMatch(seen); break;
      case Kind::Present: matched = false; break;  // handled above
    }
  }
  return matched != invert;
}

bool MethodMatch::matches(std::string_view path, std::string_view service, const HeaderMap& request) const {
  bool method_matches = false;
  switch (kind) {
    case Kind::Service: method_matches = service == value; break;
    case Kind::Method: method_matches = path == value; break;
    case Kind::Prefix: method_matches = path.starts_with(value); break;
    case Kind::Regex: method_matches = regex->fullMatch(path); break;
  }
  if (!method_matches) return false;
  for (const HeaderMatch& h : headers) {
    if (!h.matches(request)) return false;
  }
  return true;
}

std::optional<MethodMatch> readMethodMatch(JsonObject& parent, std::string_view key, bool required) {
  const nlohmann::json* value = parent.object(key, required);
  if (value == nullptr) return std::nullopt;
  JsonObject m(*value, parent.pathOf(key), parent.errors());
  size_t errors_before = m.errors().size();
  auto service = m.string("service");
  auto method = m.string("method");
  auto prefix = m.string("prefix");
  auto regex = m.string("regex");
  std::vector<HeaderMatch> headers;
  if (const nlohmann::json* list = m.array("headers")) {
    if (list->empty()) m.errors().add(m.pathOf("headers"), "an empty list matches nothing more: leave it out");
    for (size_t i = 0; i < list->size(); ++i) {
      if (auto h = readHeaderMatch((*list)[i], jsonPath(m.pathOf("headers"), i), m.errors())) {
        headers.push_back(std::move(*h));
      }
    }
  }
  m.finish();
  MethodMatch out;
  if ((service ? 1 : 0) + (method ? 1 : 0) + (prefix ? 1 : 0) + (regex ? 1 : 0) != 1) {
    m.errors().add(m.path(), "give exactly one of \"service\", \"method\", \"prefix\" or \"regex\"");
  } else if (regex) {
    out.kind = MethodMatch::Kind::Regex;
    out.value = std::move(*regex);
    std::string error;
    out.regex = Regex::compile(out.value, error);
    if (!out.regex) {
      m.errors().add(m.pathOf("regex"), error);
    } else if (!out.regex->canMatchStartingWith('/')) {
      // "shop\.v1\..*" would silently match no call (in an auth rule, a
      // requirement gone).
      m.errors().add(m.pathOf("regex"), "a gRPC path starts with \"/\": this pattern can match no call");
    }
  } else if (service) {
    out.kind = MethodMatch::Kind::Service;
    out.value = std::move(*service);
    constexpr std::string_view kExpected = "expected a service name like \"shop.v1.Catalog\"";
    if (out.value.empty() || out.value.find('/') != std::string::npos || dotSegment(out.value)) {
      m.errors().add(m.pathOf("service"), std::string(kExpected));
    } else if (!onlyNameChars(out.value, false)) {
      m.errors().add(m.pathOf("service"), badCharacters(out.value, kExpected));
    }
  } else if (method) {
    out.kind = MethodMatch::Kind::Method;
    out.value = std::move(*method);
    constexpr std::string_view kExpected = "expected a full method name like \"/shop.v1.Orders/Place\"";
    const size_t slash = out.value.find('/', 1);
    if (!validMethodPath(out.value) || dotSegment(std::string_view(out.value).substr(1, slash - 1)) ||
        dotSegment(std::string_view(out.value).substr(slash + 1))) {
      m.errors().add(m.pathOf("method"), std::string(kExpected));
    } else if (!onlyNameChars(out.value, true)) {
      m.errors().add(m.pathOf("method"), badCharacters(out.value, kExpected));
    }
  } else {
    out.kind = MethodMatch::Kind::Prefix;
    out.value = std::move(*prefix);
    const size_t second = out.value.find('/', 1);
    if (!out.value.starts_with('/')) {
      m.errors().add(m.pathOf("prefix"), "a path prefix must start with \"/\"");
    } else if (second != std::string::npos &&
               (second == 1 || dotSegment(std::string_view(out.value).substr(1, second - 1)) ||
                out.value.find('/', second + 1) != std::string::npos)) {
      // "/a/b/", "//x", "/../": a gRPC path is /service/method, each a name.
      m.errors().add(m.pathOf("prefix"), "a gRPC path is \"/service/method\": this prefix can match no call");
    } else if (!onlyNameChars(out.value, true)) {
      m.errors().add(m.pathOf("prefix"), badCharacters(out.value, "expected a path prefix like \"/shop.v1.\""));
    }
  }
  if (m.errors().size() != errors_before) return std::nullopt;
  out.headers = std::move(headers);
  return out;
}

}  // namespace sluice
