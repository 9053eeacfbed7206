#include "filters/auth/config.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "codecs/grpc/grpc_headers.h"
#include "core/headers.h"
#include "core/request_id.h"
#include "core/json_reader.h"
#include "core/method_match.h"
#include "filters/auth/filter.h"

namespace sluice::filters::auth {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxTokenBytesLimit = 64 * 1024;  // HTTP/2 header lists rarely allow more anyway
constexpr uint64_t kMaxClockSkewSeconds = 3600;

class AuthFilterFactory : public FilterFactory {
 public:
  explicit AuthFilterFactory(std::shared_ptr<const AuthConfig> config) : config_(std::move(config)) {}
  FilterPtr createFilter(StreamContext&) const override { return std::make_unique<AuthFilter>(*config_); }

 private:
  std::shared_ptr<const AuthConfig> config_;
};

// A metadata key the config names: lower-case, and not one gRPC owns.
std::optional<std::string> readKey(JsonObject& obj, std::string_view key, bool required = false) {
  auto name = obj.string(key, required);
  if (!name) return std::nullopt;
  if (!isValidMetadataKey(*name) || isReservedMetadataKey(*name)) {
    obj.errors().add(obj.pathOf(key), fmt::format("\"{}\" is not a metadata key this filter may use "
                                                  "(lower-case letters, digits, '-', '_', '.'; not grpc-*)",
                                                  *name));
    return std::nullopt;
  }
  if (*name == request_id::kHeader) {
    obj.errors().add(obj.pathOf(key), std::string(request_id::kNotEditable));
    return std::nullopt;
  }
  return name;
}

std::vector<std::string> readStrings(JsonObject& obj, std::string_view key) {
  std::vector<std::string> out;
  const json* list = obj.array(key);
  if (list == nullptr) return out;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& v = (*list)[i];
    if (!v.is_string() || v.get<std::string>().empty()) {
      obj.errors().add(jsonPath(obj.pathOf(key), i), "expected a non-empty string");
      continue;
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::optional<ApiKeyConfig> readApiKeys(JsonObject& parent) {
  const json* value = parent.object("api_keys");
  if (value == nullptr) return std::nullopt;
  ApiKeyConfig out;
  const size_t errors_before = parent.errors().size();
  JsonObject obj(*value, parent.pathOf("api_keys"), parent.errors());
  if (auto key = readKey(obj, "metadata_key")) out.metadata_key = *key;
  out.keys.setBinary(grpc_headers::isBinaryHeader(out.metadata_key));
  if (const json* keys = obj.array("keys")) out.keys.addEntries(*keys, obj.pathOf("keys"), obj.errors());
  if (auto file = obj.string("file")) out.keys.addFile(*file, obj.pathOf("file"), obj.errors());
  if (obj.isObject() && obj.value("keys") == nullptr && obj.value("file") == nullptr) {
    obj.errors().add(obj.path(), "give \"keys\", \"file\" or both");
  } else if (obj.isObject() && out.keys.size() == 0 && errors_before == obj.errors().size()) {
    obj.errors().add(obj.path(), "no API keys: no call could authenticate with one");
  }
  obj.finish();
  return out;
}

std::shared_ptr<const Jwks> readJwks(JsonObject& obj) {
  auto file = obj.string("jwks_file");
  const json* inline_jwks = obj.object("jwks");
  if (file.has_value() == (inline_jwks != nullptr)) {
    obj.errors().add(obj.path(), "give exactly one of \"jwks_file\" or \"jwks\"");
    return nullptr;
  }
  if (inline_jwks != nullptr) return Jwks::parse(*inline_jwks, "JWKS", obj.pathOf("jwks"), obj.errors());
  json doc;
  if (!loadJsonFile(*file, "JWKS file", obj.pathOf("jwks_file"), doc, obj.errors())) return nullptr;
  return Jwks::parse(doc, fmt::format("JWKS file \"{}\"", *file), obj.pathOf("jwks_file"), obj.errors());
}

std::optional<JwtConfig> readJwt(JsonObject& parent) {
  const json* value = parent.object("jwt");
  if (value == nullptr) return std::nullopt;
  JwtConfig out;
  JsonObject obj(*value, parent.pathOf("jwt"), parent.errors());
  out.jwks = readJwks(obj);
  if (obj.value("algorithms") != nullptr) {
    out.rules.algorithms.clear();
    auto names = readStrings(obj, "algorithms");
    for (size_t i = 0; i < names.size(); ++i) {
      if (auto alg = parseJwtAlg(names[i])) {
        out.rules.algorithms.push_back(*alg);
      } else {
        obj.errors().add(jsonPath(obj.pathOf("algorithms"), i),
                         fmt::format("unsupported algorithm \"{}\" (HS256, RS256, ES256)", names[i]));
      }
    }
    if (names.empty()) obj.errors().add(obj.pathOf("algorithms"), "at least one algorithm is needed");
  }
  out.rules.issuers = readStrings(obj, "issuers");
  out.rules.audiences = readStrings(obj, "audiences");
  if (auto v = obj.boolean("require_exp")) out.rules.require_exp = *v;
  if (auto v = obj.unsignedInt("clock_skew_seconds", 0, kMaxClockSkewSeconds)) {
    out.rules.clock_skew = std::chrono::seconds(*v);
  }
  if (auto v = obj.unsignedInt("max_token_bytes", 64, kMaxTokenBytesLimit)) out.rules.max_token_bytes = *v;
  for (auto [key, field] : {std::pair{"scope_claim", &out.scope_claim}, {"principal_claim", &out.principal_claim}}) {
    if (auto v = obj.string(key)) {
      if (v->empty()) obj.errors().add(obj.pathOf(key), "a claim name cannot be empty");
      *field = *v;
    }
  }
  if (const json* claims = obj.object("claims_to_metadata")) {
    JsonObject map(*claims, obj.pathOf("claims_to_metadata"), obj.errors());
    for (const auto& [claim, _] : claims->items()) {
      auto key = readKey(map, claim, true);
      if (!key) continue;
      auto same = std::find_if(out.claims_to_metadata.begin(), out.claims_to_metadata.end(),
                               [&](const auto& entry) { return entry.second == *key; });
      if (same != out.claims_to_metadata.end()) {
        map.errors().add(map.pathOf(claim), fmt::format("\"{}\" is set from claim \"{}\" already", *key, same->first));
        continue;
      }
      out.claims_to_metadata.emplace_back(claim, *key);
    }
    map.finish();
  }
  obj.finish();
  return out;
}

AuthRule readRule(const json& value, const std::string& path, ConfigErrors& errors) {
  AuthRule rule;
  JsonObject obj(value, path, errors);
  rule.match = readMethodMatch(obj, "match", false);
  rule.is_public = obj.boolean("public").value_or(false);
  rule.scopes = readStrings(obj, "scopes");
  if (rule.is_public && !rule.scopes.empty()) {
    errors.add(obj.pathOf("scopes"), "a public rule cannot require scopes");
  }
  obj.finish();
  return rule;
}

}  // namespace

const AuthRule* AuthConfig::ruleFor(std::string_view path, std::string_view service, const HeaderMap& headers) const {
  return firstMatchingRule(rules, path, service, headers);
}

FilterFactorySharedPtr AuthConfigFactory::create(const json& config, const std::string& path,
                                                 FilterBuildContext& ctx) const {
  auto out = std::make_shared<AuthConfig>();
  size_t errors_before = ctx.errors.size();
  JsonObject obj(config, path, ctx.errors);
  out->api_keys = readApiKeys(obj);
  out->jwt = readJwt(obj);
  if (obj.isObject() && !out->api_keys && !out->jwt) {
    ctx.errors.add(path, "give \"api_keys\", \"jwt\" or both: the credentials this filter accepts");
  }
  if (auto key = readKey(obj, "principal_metadata")) out->principal_metadata = *key;
  if (auto v = obj.boolean("forward_credentials")) out->forward_credentials = *v;
  if (const json* rules = obj.array("rules")) {
    for (size_t i = 0; i < rules->size(); ++i) {
      out->rules.push_back(readRule((*rules)[i], jsonPath(obj.pathOf("rules"), i), ctx.errors));
    }
  }
  obj.finish();
  // The keys the filter sets are cleared from every request first: one that
  // is also a credential's key would erase the credential before the check.
  auto credential = [&](const std::string& key) {
    return key == "authorization" || (out->api_keys && key == out->api_keys->metadata_key);
  };
  if (credential(out->principal_metadata)) {
    ctx.errors.add(obj.pathOf("principal_metadata"), "cannot be a key that carries credentials");
  }
  // With jwt, an authorization field is read as a bearer token: API keys
  // sent in it would never authenticate.
  if (out->jwt && out->api_keys && out->api_keys->metadata_key == "authorization") {
    ctx.errors.add(jsonPath(obj.pathOf("api_keys"), "metadata_key"),
                   "\"authorization\" carries the JWT bearer token when jwt is configured: API keys need a key of "
                   "their own (e.g. x-api-key)");
  }
  if (out->jwt) {
    for (const auto& [claim, key] : out->jwt->claims_to_metadata) {
      if (credential(key)) {
        ctx.errors.add(jsonPath(jsonPath(obj.pathOf("jwt"), "claims_to_metadata"), claim),
                       "cannot be a key that carries credentials");
      } else if (key == out->principal_metadata) {
        ctx.errors.add(jsonPath(jsonPath(obj.pathOf("jwt"), "claims_to_metadata"), claim),
                       fmt::format("\"{}\" is principal_metadata already", key));
      }
    }
  }
  // Rules are matched after those keys are cleared: a header match on one
  // would test an absence, whatever the client sent.
  auto identity = [&](const std::string& key) {
    if (key == out->principal_metadata) return true;
    if (!out->jwt) return false;
    for (const auto& [_, k] : out->jwt->claims_to_metadata) {
      if (k == key) return true;
    }
    return false;
  };
  for (size_t i = 0; i < out->rules.size(); ++i) {
    if (!out->rules[i].match) continue;
    const auto& headers = out->rules[i].match->headers;
    for (size_t j = 0; j < headers.size(); ++j) {
      if (!identity(headers[j].name)) continue;
      ctx.errors.add(jsonPath(jsonPath(jsonPath(jsonPath(obj.pathOf("rules"), i), "match"), "headers"), j) + "/name",
                     fmt::format("{} is metadata this filter sets, cleared from every request before the rules "
                                 "are matched: this match would never see it",
                                 headers[j].name));
    }
  }
  if (ctx.errors.size() != errors_before) return nullptr;
  return std::make_shared<AuthFilterFactory>(std::move(out));
}

}  // namespace sluice::filters::auth
