#include "core/method_match.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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

// What a value with other characters gets told.
std::string badCharacters(std::string_view value, std::string_view expected) {
  if (value.find('*') != std::string_view::npos) return "wildcards are not supported; use \"prefix\"";
  return fmt::format("{}; names hold only letters, digits, '_', '.' and '-' (a call to any other path is refused)",
                     expected);
}

}  // namespace

bool MethodMatch::matches(std::string_view path, std::string_view service) const {
  switch (kind) {
    case Kind::Service: return service == value;
    case Kind::Method: return path == value;
    case Kind::Prefix: return path.starts_with(value);
  }
  return false;
}

std::optional<MethodMatch> readMethodMatch(JsonObject& parent, std::string_view key, bool required) {
  const nlohmann::json* value = parent.object(key, required);
  if (value == nullptr) return std::nullopt;
  JsonObject m(*value, parent.pathOf(key), parent.errors());
  size_t errors_before = m.errors().size();
  auto service = m.string("service");
  auto method = m.string("method");
  auto prefix = m.string("prefix");
  m.finish();
  MethodMatch out;
  if ((service ? 1 : 0) + (method ? 1 : 0) + (prefix ? 1 : 0) != 1) {
    m.errors().add(m.path(), "give exactly one of \"service\", \"method\" or \"prefix\"");
  } else if (service) {
    out = {MethodMatch::Kind::Service, std::move(*service)};
    constexpr std::string_view kExpected = "expected a service name like \"shop.v1.Catalog\"";
    if (out.value.empty() || out.value.find('/') != std::string::npos) {
      m.errors().add(m.pathOf("service"), std::string(kExpected));
    } else if (!onlyNameChars(out.value, false)) {
      m.errors().add(m.pathOf("service"), badCharacters(out.value, kExpected));
    }
  } else if (method) {
    out = {MethodMatch::Kind::Method, std::move(*method)};
    constexpr std::string_view kExpected = "expected a full method name like \"/shop.v1.Orders/Place\"";
    if (!validMethodPath(out.value)) {
      m.errors().add(m.pathOf("method"), std::string(kExpected));
    } else if (!onlyNameChars(out.value, true)) {
      m.errors().add(m.pathOf("method"), badCharacters(out.value, kExpected));
    }
  } else {
    out = {MethodMatch::Kind::Prefix, std::move(*prefix)};
    if (!out.value.starts_with('/')) {
      m.errors().add(m.pathOf("prefix"), "a path prefix must start with \"/\"");
    } else if (!onlyNameChars(out.value, true)) {
      m.errors().add(m.pathOf("prefix"), badCharacters(out.value, "expected a path prefix like \"/shop.v1.\""));
    }
  }
  if (m.errors().size() != errors_before) return std::nullopt;
  return out;
}

}  // namespace sluice
