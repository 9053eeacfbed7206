// JwtSigner: mints JWTs with keys generated at run time, for tests and local
// tooling (the gateway itself only verifies). Tests use it so that no private
// key is ever committed: each run makes fresh keys and publishes the public
// halves as a JWKS for the auth filter to load.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "filters/auth/jwt.h"

namespace sluice::filters::auth {

class JwtSigner {
 public:
  static JwtSigner generateRs256(std::string kid, int bits = 2048);
  static JwtSigner generateEs256(std::string kid);
  // 32 random bytes of secret.
  static JwtSigner generateHs256(std::string kid);

  JwtAlg alg() const { return alg_; }
  const std::string& kid() const { return kid_; }
  // The verification key as a JWK (for HS256 that is the shared secret).
  nlohmann::json publicJwk() const;
  // A compact JWS of `claims`; the header is {"alg", "typ", "kid"} with
  // `header_overrides` merged over it (set "kid" to null to drop it).
  std::string sign(const nlohmann::json& claims,
                   const nlohmann::json& header_overrides = nlohmann::json::object()) const;
  // The raw JWS signature (ES256: r || s) of any input, to build odd tokens.
  std::string signature(std::string_view input) const;

 private:
  JwtSigner(JwtAlg alg, std::string kid) : alg_(alg), kid_(std::move(kid)) {}

  JwtAlg alg_;
  std::string kid_;
  std::string secret_;
  EvpPkeyPtr key_;  // private key (RS256, ES256)
};

}  // namespace sluice::filters::auth
