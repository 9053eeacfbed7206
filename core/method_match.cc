#include "core/method_match.h"

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
    if (out.value.empty() || out.value.find('/') != std::string::npos) {
      m.errors().add(m.pathOf("service"), "expected a service name like \"shop.v1.Catalog\"");
    }
  } else if (method) {
    out = {MethodMatch::Kind::Method, std::move(*method)};
    if (!validMethodPath(out.value)) {
      m.errors().add(m.pathOf("method"), "expected a full method name like \"/shop.v1.Orders/Place\"");
    }
  } else {
    out = {MethodMatch::Kind::Prefix, std::move(*prefix)};
    if (!out.value.starts_with('/')) m.errors().add(m.pathOf("prefix"), "a path prefix must start with \"/\"");
  }
  if (m.errors().size() != errors_before) return std::nullopt;
  return out;
}

}  // namespace sluice
