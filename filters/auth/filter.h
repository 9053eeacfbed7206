// AuthFilter: authenticates a call from its request metadata before anything
// else of it moves on, then checks the method's rule.
//
// On request headers: identity keys the filter sets are first removed from
// what the client sent (so they cannot be forged); a public method passes;
// otherwise a bearer token (when JWT is configured and `authorization` is
// present) or else an API key is verified. Missing or invalid credentials end
// the call with UNAUTHENTICATED, a verified caller without the rule's scopes
// with PERMISSION_DENIED; messages say why but never echo a credential.
// Credentials are removed before the backend sees the call unless
// forward_credentials is set.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/filter.h"
#include "core/headers.h"
#include "core/status.h"
#include "filters/auth/config.h"

namespace sluice::filters::auth {

// Who a verified caller is.
struct Identity {
  std::string principal;             // API key name, or the JWT's principal claim
  std::vector<std::string> scopes;
  std::optional<nlohmann::json> claims;  // JWT only
};

class AuthFilter : public Filter {
 public:
  explicit AuthFilter(const AuthConfig& config) : config_(config) {}

  FilterStatus onRequestHeaders(StreamContext& ctx) override;

 private:
  StatusOr<Identity> authenticate(const HeaderMap& headers) const;
  StatusOr<Identity> verifyBearer(std::string_view authorization) const;
  void addIdentity(HeaderMap& headers, const Identity& identity) const;
  void stripCredentials(HeaderMap& headers) const;

  const AuthConfig& config_;
};

}  // namespace sluice::filters::auth
