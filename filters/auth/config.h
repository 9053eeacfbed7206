// Auth config: which credentials are accepted (API keys, JWT bearer tokens or
// both), what a verified caller's identity adds to the request metadata, and
// per-method rules (public, or which scopes are needed). Parsed once, keys
// included; shared read-only by every stream and worker.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/method_match.h"
#include "core/registry.h"
#include "filters/auth/api_keys.h"
#include "filters/auth/jwt.h"

namespace sluice::filters::auth {

struct AuthRule {
  std::optional<MethodMatch> match;  // absent: every call
  bool is_public = false;
  std::vector<std::string> scopes;  // every one is needed
};

struct ApiKeyConfig {
  std::string metadata_key = "x-api-key";
  ApiKeyStore keys;
};

struct JwtConfig {
  std::shared_ptr<const Jwks> jwks;
  JwtRules rules;
  std::string scope_claim = "scope";
  std::string principal_claim = "sub";
  std::vector<std::pair<std::string, std::string>> claims_to_metadata;  // claim -> metadata key
};

struct AuthConfig {
  std::optional<ApiKeyConfig> api_keys;
  std::optional<JwtConfig> jwt;
  std::vector<AuthRule> rules;
  std::string principal_metadata;  // empty: the identity is not passed on
  bool forward_credentials = false;

  // The first rule matching the call; nullptr means the default: a verified
  // caller, no scope needed.
  const AuthRule* ruleFor(std::string_view path, std::string_view service, const HeaderMap& headers) const;
};

class AuthConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::filters::auth
