#include "filters/metadata/config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "codecs/grpc/grpc_headers.h"
#include "core/json_reader.h"
#include "core/request_id.h"
#include "filters/metadata/filter.h"

namespace sluice::filters::metadata {
namespace {

using json = nlohmann::json;

class MetadataFilterFactory : public FilterFactory {
 public:
  explicit MetadataFilterFactory(std::shared_ptr<const MetadataConfig> config) : config_(std::move(config)) {}
  FilterPtr createFilter(StreamContext&) const override { return std::make_unique<MetadataFilter>(*config_); }

 private:
  std::shared_ptr<const MetadataConfig> config_;
};

// A key the config edits: valid gRPC syntax, and not one gRPC or HTTP/2 owns.
bool checkName(std::string_view name, const std::string& path, ConfigErrors& errors) {
  if (name.empty()) {
    errors.add(path, "a metadata key cannot be empty");
    return false;
  }
  if (!isValidMetadataKey(name)) {
    errors.add(path, fmt::format("\"{}\" is not a valid metadata key (lower-case letters, digits, '-', '_', '.')",
                                 name));
    return false;
  }
  if (isReservedMetadataKey(name)) {
    errors.add(path, fmt::format("\"{}\" is reserved by gRPC/HTTP/2 and cannot be edited", name));
    return false;
  }
  if (name == request_id::kHeader) {
    errors.add(path, std::string(request_id::kNotEditable));
    return false;
  }
  return true;
}

// Text values are printable ASCII (the gRPC spec); -bin values are written in
// the config as base64, which is also their form on the wire.
bool checkValue(std::string_view name, std::string_view value, const std::string& path, ConfigErrors& errors) {
  if (grpc_headers::isBinaryHeader(name)) {
    if (!grpc_headers::base64Decode(value)) {
      errors.add(path, fmt::format("the value of binary key \"{}\" must be base64", name));
      return false;
    }
    return true;
  }
  for (char c : value) {
    auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b > 0x7E) {
      errors.add(path, "a metadata value must be printable ASCII (use a \"-bin\" key for bytes)");
      return false;
    }
  }
  // HTTP/2 forbids it (RFC 9113 8.2.1): nghttp2 peers reset the stream.
  if (!value.empty() && (value.front() == ' ' || value.back() == ' ')) {
    errors.add(path, "a metadata value cannot begin or end with a space (HTTP/2 peers reject the call)");
    return false;
  }
  return true;
}

// {"key": "value", ...}; with `multi`, a value may also be an array of values.
void readPairs(const json* object, const std::string& path, bool multi, std::vector<Header>& out,
               ConfigErrors& errors) {
  if (object == nullptr) return;
  for (const auto& item : object->items()) {
    // Named references, not structured bindings: clang before 16 cannot
    // capture a structured binding in the lambda below.
    const std::string& name = item.key();
    const json& value = item.value();
    std::string value_path = jsonPath(path, name);
    bool name_ok = checkName(name, value_path, errors);
    auto take = [&](const json& v, const std::string& p) {
      if (!v.is_string()) {
        errors.add(p, fmt::format("expected a string, got {}", v.type_name()));
        return;
      }
      auto text = v.get<std::string>();
      if (name_ok && checkValue(name, text, p, errors)) out.push_back({name, std::move(text)});
    };
    if (multi && value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) take(value[i], jsonPath(value_path, i));
    } else if (multi && !value.is_string()) {
      errors.add(value_path, fmt::format("expected a string or an array of strings, got {}", value.type_name()));
    } else {
      take(value, value_path);
    }
  }
}

HeaderOps readOps(JsonObject& parent, std::string_view key, ConfigErrors& errors) {
  HeaderOps ops;
  const json* value = parent.object(key);
  if (value == nullptr) return ops;
  JsonObject obj(*value, parent.pathOf(key), errors);
  if (const json* remove = obj.array("remove")) {
    for (size_t i = 0; i < remove->size(); ++i) {
      std::string p = jsonPath(obj.pathOf("remove"), i);
      const json& v = (*remove)[i];
      if (!v.is_string()) {
        errors.add(p, fmt::format("expected a string, got {}", v.type_name()));
        continue;
      }
      if (checkName(v.get<std::string>(), p, errors)) ops.remove.push_back(v.get<std::string>());
    }
  }
  readPairs(obj.object("set"), obj.pathOf("set"), false, ops.set, errors);
  readPairs(obj.object("add"), obj.pathOf("add"), true, ops.add, errors);
  obj.finish();
  return ops;
}

}  // namespace

void HeaderOps::apply(HeaderMap& headers) const {
  for (const auto& name : remove) headers.remove(name);
  for (const auto& h : set) headers.set(h.name, h.value);
  for (const auto& h : add) headers.add(h.name, h.value);
}

std::string peerIp(std::string_view peer_address) {
  if (peer_address.starts_with('[')) {
    auto close = peer_address.find(']');
    return std::string(peer_address.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
  }
  auto colon = peer_address.rfind(':');
  return std::string(peer_address.substr(0, colon));
}

FilterFactorySharedPtr MetadataConfigFactory::create(const json& config, const std::string& path,
                                                     FilterBuildContext& ctx) const {
  auto out = std::make_shared<MetadataConfig>();
  size_t errors_before = ctx.errors.size();
  JsonObject obj(config, path, ctx.errors);
  out->request = readOps(obj, "request", ctx.errors);
  out->response = readOps(obj, "response", ctx.errors);
  out->response_trailers = readOps(obj, "response_trailers", ctx.errors);
  if (auto mode = obj.string("x_forwarded_for")) {
    if (*mode == "append") {
      out->forwarded_for = ForwardedFor::Append;
    } else if (*mode == "replace") {
      out->forwarded_for = ForwardedFor::Replace;
    } else if (*mode != "off") {
      ctx.errors.add(obj.pathOf("x_forwarded_for"),
                     fmt::format("expected \"append\", \"replace\" or \"off\", got \"{}\"", *mode));
    }
  }
  obj.finish();
  if (ctx.errors.size() != errors_before) return nullptr;
  return std::make_shared<MetadataFilterFactory>(std::move(out));
}

}  // namespace sluice::filters::metadata
