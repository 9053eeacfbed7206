#include "filters/auth/filter.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "codecs/grpc/grpc_headers.h"
#include "core/headers.h"
#include "core/stream_context.h"

namespace sluice::filters::auth {
namespace {

using json = nlohmann::json;

// OAuth 2 puts scopes in one space-separated string ("scope"); some issuers
// use an array ("scp"). Both are accepted.
std::vector<std::string> scopesFromClaim(const json& claims, const std::string& claim) {
  std::vector<std::string> out;
  auto it = claims.find(claim);
  if (it == claims.end()) return out;
  if (it->is_string()) {
    std::string_view rest = it->get_ref<const std::string&>();
    while (!rest.empty()) {
      size_t space = rest.find(' ');
      std::string_view word = rest.substr(0, space);
      if (!word.empty()) out.emplace_back(word);
      if (space == std::string_view::npos) break;
      rest.remove_prefix(space + 1);
    }
  } else if (it->is_array()) {
    for (const auto& s : *it) {
      if (s.is_string()) out.push_back(s.get<std::string>());
    }
  }
  return out;
}

bool isPrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7E; });
}

// A claim as a metadata value: strings as they are, anything else as compact
// JSON; nullopt when it cannot travel as text (then a -bin key is needed):
// outside printable ASCII, or beginning or ending with a space, which HTTP/2
// forbids in a field value (RFC 9113 8.2.1; strict backends reset the call).
std::optional<std::string> claimValue(const json& claim, std::string_view key) {
  std::string text = claim.is_string() ? claim.get<std::string>()
                                       : claim.dump(-1, ' ', false, json::error_handler_t::replace);
  if (grpc_headers::isBinaryHeader(key)) return grpc_headers::base64Encode(text);
  if (!isPrintableAscii(text)) return std::nullopt;
  if (!text.empty() && (text.front() == ' ' || text.back() == ' ')) return std::nullopt;
  return text;
}

}  // namespace

FilterStatus AuthFilter::onRequestHeaders(StreamContext& ctx) {
  HeaderMap& headers = ctx.requestHeaders();
  // Identity metadata is the gateway's word, never the client's.
  if (!config_.principal_metadata.empty()) headers.remove(config_.principal_metadata);
  if (config_.jwt) {
    for (const auto& [_, key] : config_.jwt->claims_to_metadata) headers.remove(key);
  }

  const AuthRule* rule = config_.ruleFor(ctx.path(), ctx.service(), ctx.requestHeaders());
  if (rule != nullptr && rule->is_public) {
    stripCredentials(headers);
    return FilterStatus::Continue;
  }
  auto identity = authenticate(headers);
  stripCredentials(headers);
  if (!identity.isOk()) {
    spdlog::debug("[C{}][S{}] auth: {}", ctx.connectionId(), ctx.streamId(), identity.status().message());
    ctx.sendLocalReply(StatusCode::Unauthenticated, identity.status().message());
    return FilterStatus::StopIteration;
  }
  if (rule != nullptr) {
    std::vector<std::string> missing;
    for (const auto& scope : rule->scopes) {
      if (std::find(identity->scopes.begin(), identity->scopes.end(), scope) == identity->scopes.end()) {
        missing.push_back(scope);
      }
    }
    if (!missing.empty()) {
      ctx.sendLocalReply(StatusCode::PermissionDenied,
                         fmt::format("{} needs scope{} {}", ctx.path(), missing.size() > 1 ? "s" : "",
                                     fmt::join(missing, ", ")));
      return FilterStatus::StopIteration;
    }
  }
  addIdentity(headers, *identity);
  return FilterStatus::Continue;
}

StatusOr<Identity> AuthFilter::authenticate(const HeaderMap& headers) const {
  for (const std::string_view name : {config_.jwt ? std::string_view("authorization") : std::string_view(),
                                      config_.api_keys ? std::string_view(config_.api_keys->metadata_key)
                                                       : std::string_view()}) {
    // A credential sent twice is refused: which one is meant is anyone's
    // guess (the gateway would check the first, a backend reading the field
    // might take another, or both joined).
    if (!name.empty() && headers.count(name) > 1) {
      return Status(StatusCode::Unauthenticated, fmt::format("credential \"{}\" sent more than once", name));
    }
  }
  if (config_.jwt) {
    if (const std::string* authorization = headers.get("authorization")) return verifyBearer(*authorization);
  }
  if (config_.api_keys) {
    if (const std::string* key = headers.get(config_.api_keys->metadata_key)) {
      std::string_view presented = trimBlanks(*key);
      // A -bin key carries the client's bytes in base64, padded or not.
      std::optional<std::string> decoded;
      if (grpc_headers::isBinaryHeader(config_.api_keys->metadata_key)) {
        decoded = grpc_headers::base64Decode(presented);
        if (!decoded) return Status(StatusCode::Unauthenticated, "invalid API key");
        presented = *decoded;
      }
      const ApiKeyEntry* entry = config_.api_keys->keys.find(presented);
      if (entry == nullptr) return Status(StatusCode::Unauthenticated, "invalid API key");
      return Identity{entry->name, entry->scopes, std::nullopt};
    }
  }
  std::string wanted;
  if (config_.api_keys) wanted = fmt::format("an API key in \"{}\" metadata", config_.api_keys->metadata_key);
  if (config_.jwt) {
    if (!wanted.empty()) wanted += " or ";
    wanted += "an \"authorization: Bearer\" token";
  }
  return Status(StatusCode::Unauthenticated, "missing credentials: send " + wanted);
}

StatusOr<Identity> AuthFilter::verifyBearer(std::string_view authorization) const {
  std::string_view value = trimBlanks(authorization);
  size_t space = value.find(' ');
  if (space == std::string_view::npos || !equalsLowercaseAscii(value.substr(0, space), "bearer")) {
    return Status(StatusCode::Unauthenticated, "authorization must be \"Bearer <token>\"");
  }
  std::string_view token = trimBlanks(value.substr(space + 1));
  if (token.empty()) return Status(StatusCode::Unauthenticated, "empty bearer token");
  const JwtConfig& jwt = *config_.jwt;
  auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  auto claims = verifyJwt(token, *jwt.jwks, jwt.rules, now.count());
  if (!claims.isOk()) return claims.status();
  Identity identity;
  // A number ("uid": 123) names a caller as well as a string does.
  if (auto p = claims->find(jwt.principal_claim); p != claims->end() && (p->is_string() || p->is_number())) {
    identity.principal = p->is_string() ? p->get<std::string>() : p->dump();
  }
  identity.scopes = scopesFromClaim(*claims, jwt.scope_claim);
  identity.claims = std::move(claims).value();
  return identity;
}

void AuthFilter::addIdentity(HeaderMap& headers, const Identity& identity) const {
  if (!config_.principal_metadata.empty() && !identity.principal.empty()) {
    // Every caller keeps a distinct value (rate limits key on it): a name
    // outside printable ASCII ("José", a UTF-8 sub) is percent-encoded as
    // grpc-message is, or base64-encoded for a -bin key.
    const std::string& key = config_.principal_metadata;
    headers.set(key, grpc_headers::isBinaryHeader(key) ? grpc_headers::base64Encode(identity.principal)
                                                       : grpc_headers::percentEncode(identity.principal));
  }
  if (!config_.jwt || !identity.claims) return;
  for (const auto& [claim, key] : config_.jwt->claims_to_metadata) {
    auto it = identity.claims->find(claim);
    if (it == identity.claims->end()) continue;
    if (auto value = claimValue(*it, key)) headers.set(key, std::move(*value));
  }
}

void AuthFilter::stripCredentials(HeaderMap& headers) const {
  if (config_.forward_credentials) return;
  if (config_.jwt) headers.remove("authorization");
  if (config_.api_keys) headers.remove(config_.api_keys->metadata_key);
}

}  // namespace sluice::filters::auth
