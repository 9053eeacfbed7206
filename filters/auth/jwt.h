// JWT verification (compact JWS, RFC 7515/7519) with keys from a JWKS
// document (RFC 7517), on OpenSSL.
//
// Jwks is parsed once at config load and shared read-only by every worker
// (verification creates its own OpenSSL contexts, so sharing is safe).
// verifyJwt() checks, in this order: size and shape, header, algorithm
// (HS256, RS256, ES256 only: never "none"), signature with a key whose type
// matches the algorithm, then exp / nbf / iss / aud. Claims are interpreted
// only after the signature verified. Error messages name what was wrong and
// never include the token or any part of it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config_errors.h"
#include "core/status.h"

struct evp_pkey_st;

namespace sluice::filters::auth {

enum class JwtAlg { HS256, RS256, ES256 };
std::optional<JwtAlg> parseJwtAlg(std::string_view name);
std::string_view jwtAlgName(JwtAlg alg);

// Base64url without padding (RFC 7515 section 2), via libsodium. Decoding is
// strict: no padding, nothing outside the url-safe alphabet.
std::string base64UrlEncode(std::string_view bytes);
std::optional<std::string> base64UrlDecode(std::string_view text);

struct EvpPkeyDeleter {
  void operator()(evp_pkey_st* key) const;
};
using EvpPkeyPtr = std::unique_ptr<evp_pkey_st, EvpPkeyDeleter>;

// One verification key of a JWKS.
struct Jwk {
  std::string kid;       // empty when the JWK has none
  JwtAlg alg;            // the only algorithm this key verifies
  std::string secret;    // HS256
  EvpPkeyPtr public_key; // RS256 (RSA >= 2048 bits) / ES256 (P-256)
};

class Jwks {
 public:
  // Parses a JWKS document ({"keys": [...]}). Mistakes are added to `errors`
  // at `path`, with the JSON pointer inside the document in the message
  // (`where` names the document, e.g. the file). Keys Sluice cannot use
  // (encryption keys, other curves or algorithms) are skipped; a JWKS left
  // without any usable key is an error.
  static std::shared_ptr<const Jwks> parse(const nlohmann::json& doc, const std::string& where,
                                           const std::string& path, ConfigErrors& errors);

  size_t size() const { return keys_.size(); }
  // The keys that may have signed a token with this alg and kid (any kid
  // when the token names none).
  std::vector<const Jwk*> candidates(JwtAlg alg, const std::string* kid) const;

 private:
  std::vector<Jwk> keys_;
};

struct JwtRules {
  std::vector<JwtAlg> algorithms{JwtAlg::HS256, JwtAlg::RS256, JwtAlg::ES256};
  std::vector<std::string> issuers;    // empty: any issuer
  std::vector<std::string> audiences;  // empty: aud not checked
  bool require_exp = true;
  std::chrono::seconds clock_skew{60};
  size_t max_token_bytes = 8192;
};

// The token's claims (a JSON object) when it verifies; UNAUTHENTICATED with
// the reason otherwise. `now` is seconds since the Unix epoch.
StatusOr<nlohmann::json> verifyJwt(std::string_view token, const Jwks& jwks, const JwtRules& rules, int64_t now);

}  // namespace sluice::filters::auth
