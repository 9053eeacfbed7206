#include "filters/auth/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>

#include <sodium.h>

#include <algorithm>
#include <cctype>

#include <map>

#include <fmt/format.h>

#include "core/json_reader.h"

namespace sluice::filters::auth {
namespace {

using json = nlohmann::json;

constexpr size_t kHs256MinSecretBytes = 32;  // RFC 7518 3.2: at least the hash size
constexpr int kRsaMinBits = 2048;
constexpr size_t kP256CoordinateBytes = 32;
// A JWKS naming many keys with one kid (or none) must not turn one token into
// unbounded signature checks.
constexpr size_t kMaxCandidateKeys = 8;

// JWS uses base64url without padding (RFC 7515 section 2).
constexpr int kUrlVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

// Idempotent and thread-safe; libsodium asks for it before any other call.
void ensureSodium() {
  [[maybe_unused]] static const int kInit = sodium_init();
}

Status unauthenticated(std::string message) { return {StatusCode::Unauthenticated, std::move(message)}; }

struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

// Builds a public key of `type` ("RSA", "EC") from OpenSSL params; nullptr on failure.
EvpPkeyPtr keyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    ERR_clear_error();
    return nullptr;
  }
  return EvpPkeyPtr(raw);
}

// Reads the base64url member `name` of a JWK; reports and returns nullopt when
// missing or not base64url.
std::optional<std::string> jwkBytes(const json& jwk, const char* name, const std::string& where,
                                    const std::string& key_path, const std::string& path, ConfigErrors& errors) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    errors.add(path, fmt::format("{} at {}: \"{}\" is required (a base64url string)", where, key_path, name));
    return std::nullopt;
  }
  auto bytes = base64UrlDecode(it->get<std::string>());
  if (!bytes || bytes->empty()) {
    errors.add(path, fmt::format("{} at {}: \"{}\" is not valid base64url", where, jsonPath(key_path, name), name));
    return std::nullopt;
  }
  return bytes;
}

EvpPkeyPtr rsaKey(const std::string& n, const std::string& e) {
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    ERR_clear_error();
    return nullptr;
  }
  return keyFromParams("RSA", bld.get());
}

EvpPkeyPtr p256Key(const std::string& x, const std::string& y) {
  std::string point = "\x04" + x + y;  // SEC 1 uncompressed point
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
    ERR_clear_error();
    return nullptr;
  }
  EvpPkeyPtr key = keyFromParams("EC", bld.get());
  if (!key) return nullptr;
  // A point off the curve would make verification meaningless (invalid-curve attacks).
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return key;
}

// Parses one JWK into `out`; returns false when it is skipped or wrong
// (wrong ones are reported).
bool parseJwk(const json& jwk, const std::string& where, const std::string& key_path, const std::string& path,
              ConfigErrors& errors, Jwk& out) {
  if (!jwk.is_object()) {
    errors.add(path, fmt::format("{} at {}: expected a JWK object, got {}", where, key_path, jwk.type_name()));
    return false;
  }
  auto str = [&](const char* name) -> std::optional<std::string> {
    auto it = jwk.find(name);
    if (it == jwk.end()) return std::nullopt;
    if (!it->is_string()) {
      errors.add(path, fmt::format("{} at {}: expected a string", where, jsonPath(key_path, name)));
      return std::string("\x01invalid");
    }
    return it->get<std::string>();
  };
  auto kty = str("kty");
  auto alg = str("alg");
  auto use = str("use");
  auto kid = str("kid");
  if (!kty) {
    errors.add(path, fmt::format("{} at {}: \"kty\" is required", where, key_path));
    return false;
  }
  // Encryption keys and algorithms we do not implement live in real JWKS
  // documents next to signing keys: skip them rather than refuse the file.
  if (use && *use != "sig") return false;
  out.kid = kid.value_or("");
  if (*kty == "oct") {
    if (alg && *alg != "HS256") return false;
    auto k = jwkBytes(jwk, "k", where, key_path, path, errors);
    if (!k) return false;
    if (k->size() < kHs256MinSecretBytes) {
      errors.add(path, fmt::format("{} at {}: an HS256 secret needs at least {} bytes, this one has {}", where,
                                   jsonPath(key_path, "k"), kHs256MinSecretBytes, k->size()));
      return false;
    }
    out.alg = JwtAlg::HS256;
    out.secret = std::move(*k);
    return true;
  }
  if (*kty == "RSA") {
    if (alg && *alg != "RS256") return false;
    auto n = jwkBytes(jwk, "n", where, key_path, path, errors);
    auto e = jwkBytes(jwk, "e", where, key_path, path, errors);
    if (!n || !e) return false;
    out.public_key = rsaKey(*n, *e);
    if (!out.public_key) {
      errors.add(path, fmt::format("{} at {}: not a valid RSA public key", where, key_path));
      return false;
    }
    if (EVP_PKEY_get_bits(out.public_key.get()) < kRsaMinBits) {
      errors.add(path, fmt::format("{} at {}: RSA keys need at least {} bits, this one has {}", where, key_path,
                                   kRsaMinBits, EVP_PKEY_get_bits(out.public_key.get())));
      return false;
    }
    out.alg = JwtAlg::RS256;
    return true;
  }
  if (*kty == "EC") {
    auto crv = str("crv");
    if ((alg && *alg != "ES256") || !crv || *crv != "P-256") return false;
    auto x = jwkBytes(jwk, "x", where, key_path, path, errors);
    auto y = jwkBytes(jwk, "y", where, key_path, path, errors);
    if (!x || !y) return false;
    if (x->size() != kP256CoordinateBytes || y->size() != kP256CoordinateBytes) {
      errors.add(path, fmt::format("{} at {}: P-256 coordinates are {} bytes each", where, key_path,
                                   kP256CoordinateBytes));
      return false;
    }
    out.public_key = p256Key(*x, *y);
    if (!out.public_key) {
      errors.add(path, fmt::format("{} at {}: not a valid P-256 public key (point not on the curve)", where,
                                   key_path));
      return false;
    }
    out.alg = JwtAlg::ES256;
    return true;
  }
  return false;  // OKP and others: not supported, skipped
}

bool verifyHs256(const Jwk& key, std::string_view input, const std::string& sig) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len) == nullptr) {
    ERR_clear_error();
    return false;
  }
  return sig.size() == mac_len && CRYPTO_memcmp(mac, sig.data(), mac_len) == 0;
}

bool verifyWithKey(EVP_PKEY* key, std::string_view input, const unsigned char* sig, size_t sig_len) {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), sig, sig_len, reinterpret_cast<const unsigned char*>(input.data()),
                             input.size()) == 1;
  ERR_clear_error();
  return ok;
}

// JWS carries ECDSA signatures as raw r || s (RFC 7518 3.4); OpenSSL wants DER.
bool verifyEs256(const Jwk& key, std::string_view input, const std::string& sig) {
  if (sig.size() != 2 * kP256CoordinateBytes) return false;
  const auto* bytes = reinterpret_cast<const unsigned char*>(sig.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> ecdsa(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(bytes, kP256CoordinateBytes, nullptr);
  BIGNUM* s = BN_bin2bn(bytes + kP256CoordinateBytes, kP256CoordinateBytes, nullptr);
  if (!ecdsa || r == nullptr || s == nullptr || ECDSA_SIG_set0(ecdsa.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ERR_clear_error();
    return false;
  }
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(ecdsa.get(), &der);
  if (der_len <= 0) {
    ERR_clear_error();
    return false;
  }
  bool ok = verifyWithKey(key.public_key.get(), input, der, static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return ok;
}

bool verifySignature(const Jwk& key, std::string_view input, const std::string& sig) {
  switch (key.alg) {
    case JwtAlg::HS256: return verifyHs256(key, input, sig);
    case JwtAlg::RS256:
      return verifyWithKey(key.public_key.get(), input, reinterpret_cast<const unsigned char*>(sig.data()),
                           sig.size());
    case JwtAlg::ES256: return verifyEs256(key, input, sig);
  }
  return false;
}

// A JSON object from base64url text, or nullopt. Never throws.
std::optional<json> decodeJsonObject(std::string_view b64) {
  auto text = base64UrlDecode(b64);
  if (!text) return std::nullopt;
  json doc = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  return doc;
}

// A NumericDate claim (RFC 7519 2): seconds, possibly fractional.
std::optional<double> numericDate(const json& claims, const char* name, bool& malformed) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  if (!it->is_number()) {
    malformed = true;
    return std::nullopt;
  }
  return it->get<double>();
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

std::optional<JwtAlg> parseJwtAlg(std::string_view name) {
  if (name == "HS256") return JwtAlg::HS256;
  if (name == "RS256") return JwtAlg::RS256;
  if (name == "ES256") return JwtAlg::ES256;
  return std::nullopt;
}

std::string_view jwtAlgName(JwtAlg alg) {
  switch (alg) {
    case JwtAlg::HS256: return "HS256";
    case JwtAlg::RS256: return "RS256";
    case JwtAlg::ES256: return "ES256";
  }
  return "?";
}

std::string base64UrlEncode(std::string_view bytes) {
  ensureSodium();
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), kUrlVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    kUrlVariant);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::optional<std::string> base64UrlDecode(std::string_view text) {
  ensureSodium();
  std::string out(text.size() * 3 / 4 + 1, '\0');
  size_t len = 0;
  const char* end = nullptr;
  // Strict: url-safe alphabet only, no padding, no ignored characters, and
  // the whole input consumed (libsodium also rejects non-zero leftover bits).
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &len, &end, kUrlVariant) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

void EvpPkeyDeleter::operator()(evp_pkey_st* key) const { EVP_PKEY_free(key); }

std::shared_ptr<const Jwks> Jwks::parse(const json& doc, const std::string& where, const std::string& path,
                                        ConfigErrors& errors) {
  size_t errors_before = errors.size();
  auto out = std::make_shared<Jwks>();
  auto keys = doc.is_object() ? doc.find("keys") : doc.end();
  if (!doc.is_object() || keys == doc.end() || !keys->is_array()) {
    errors.add(path, fmt::format("{}: expected a JWKS document {{\"keys\": [...]}}", where));
    return nullptr;
  }
  for (size_t i = 0; i < keys->size(); ++i) {
    Jwk jwk{};
    if (parseJwk((*keys)[i], where, jsonPath("/keys", i), path, errors, jwk)) out->keys_.push_back(std::move(jwk));
  }
  if (errors.size() != errors_before) return nullptr;
  if (out->keys_.empty()) {
    errors.add(path, fmt::format("{}: no usable key (HS256 oct, RS256 RSA or ES256 P-256 with use \"sig\")", where));
    return nullptr;
  }
  // A token with a kid is checked against the keys with that kid and then
  // those without one, kMaxCandidateKeys at most: past that, a key could
  // never verify such a token. (A token without a kid tries the first
  // kMaxCandidateKeys keys of its algorithm, as documented.)
  std::map<std::pair<JwtAlg, std::string>, size_t> sharing;
  for (const Jwk& k : out->keys_) ++sharing[{k.alg, k.kid}];
  for (const auto& [alg_kid, n] : sharing) {
    const auto& [alg, kid] = alg_kid;
    const size_t without_kid = kid.empty() ? 0 : sharing.count({alg, std::string()}) ? sharing.at({alg, std::string()}) : 0;
    if (n + without_kid <= kMaxCandidateKeys) continue;
    errors.add(path, fmt::format("{}: more than {} {} keys {}: a token is checked against {} keys at most, so the "
                                 "others could never verify one; give them distinct kids",
                                 where, kMaxCandidateKeys, jwtAlgName(alg),
                                 kid.empty() ? std::string("without a kid")
                                             : fmt::format("with kid {:?} or without a kid", kid),
                                 kMaxCandidateKeys));
  }
  if (errors.size() != errors_before) return nullptr;
  return out;
}

std::vector<const Jwk*> Jwks::candidates(JwtAlg alg, const std::string* kid) const {
  std::vector<const Jwk*> out;
  const auto take = [&](const auto& wanted) {
    for (const auto& k : keys_) {
      if (out.size() == kMaxCandidateKeys) return;
      if (k.alg == alg && wanted(k)) out.push_back(&k);
    }
  };
  if (kid == nullptr) {
    take([](const Jwk&) { return true; });
    return out;
  }
  // The keys with the token's kid, then those with none: many signers add a
  // kid that a hand-written JWKS does not name (Envoy's jwt_authn tries them too).
  take([&](const Jwk& k) { return k.kid == *kid; });
  if (!kid->empty()) take([](const Jwk& k) { return k.kid.empty(); });
  return out;
}

StatusOr<json> verifyJwt(std::string_view token, const Jwks& jwks, const JwtRules& rules, int64_t now) {
  if (token.size() > rules.max_token_bytes) {
    return unauthenticated(fmt::format("token too large (limit {} bytes)", rules.max_token_bytes));
  }
  size_t first = token.find('.');
  size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return unauthenticated("malformed token: expected three dot-separated parts");
  }
  std::string_view header_b64 = token.substr(0, first);
  std::string_view payload_b64 = token.substr(first + 1, second - first - 1);
  std::string_view sig_b64 = token.substr(second + 1);
  if (header_b64.empty() || payload_b64.empty()) return unauthenticated("malformed token: empty part");

  auto header = decodeJsonObject(header_b64);
  if (!header) return unauthenticated("malformed token: the header is not base64url-encoded JSON");
  auto alg_it = header->find("alg");
  if (alg_it == header->end() || !alg_it->is_string()) return unauthenticated("malformed token: no \"alg\"");
  std::string alg_name = alg_it->get<std::string>();
  std::string lowered = alg_name;
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lowered == "none") return unauthenticated("unsigned tokens (alg none) are not accepted");
  auto alg = parseJwtAlg(alg_name);
  if (!alg || std::find(rules.algorithms.begin(), rules.algorithms.end(), *alg) == rules.algorithms.end()) {
    return unauthenticated("token algorithm is not accepted");
  }
  // RFC 7515 4.1.11: a "crit" extension we do not understand makes the token invalid.
  if (header->contains("crit")) return unauthenticated("token has critical header extensions Sluice does not support");
  std::optional<std::string> kid;
  if (auto kid_it = header->find("kid"); kid_it != header->end()) {
    if (!kid_it->is_string()) return unauthenticated("malformed token: \"kid\" is not a string");
    kid = kid_it->get<std::string>();
  }
  if (sig_b64.empty()) return unauthenticated("token is not signed");
  auto sig = base64UrlDecode(sig_b64);
  if (!sig) return unauthenticated("malformed token: the signature is not base64url");

  auto keys = jwks.candidates(*alg, kid ? &*kid : nullptr);
  if (keys.empty()) return unauthenticated("no key for this token (unknown kid, or algorithm and key type differ)");
  std::string_view signing_input = token.substr(0, second);
  bool verified = std::any_of(keys.begin(), keys.end(),
                              [&](const Jwk* k) { return verifySignature(*k, signing_input, *sig); });
  if (!verified) return unauthenticated("token signature does not verify");

  auto claims = decodeJsonObject(payload_b64);
  if (!claims) return unauthenticated("malformed token: the claims are not base64url-encoded JSON");
  bool malformed = false;
  auto exp = numericDate(*claims, "exp", malformed);
  auto nbf = numericDate(*claims, "nbf", malformed);
  if (malformed) return unauthenticated("malformed token: exp/nbf must be numbers");
  const double skew = static_cast<double>(rules.clock_skew.count());
  const double t = static_cast<double>(now);
  if (!exp && rules.require_exp) return unauthenticated("token has no expiry (exp)");
  if (exp && t >= *exp + skew) return unauthenticated("token expired");
  if (nbf && t + skew < *nbf) return unauthenticated("token not valid yet (nbf)");
  if (!rules.issuers.empty()) {
    auto iss = claims->find("iss");
    if (iss == claims->end() || !iss->is_string() || !contains(rules.issuers, iss->get<std::string>())) {
      return unauthenticated("token issuer is not accepted");
    }
  }
  if (!rules.audiences.empty()) {
    bool ok = false;
    if (auto aud = claims->find("aud"); aud != claims->end()) {
      if (aud->is_string()) {
        ok = contains(rules.audiences, aud->get<std::string>());
      } else if (aud->is_array()) {
        ok = std::any_of(aud->begin(), aud->end(),
                         [&](const json& a) { return a.is_string() && contains(rules.audiences, a.get<std::string>()); });
      }
    }
    if (!ok) return unauthenticated("token audience is not accepted");
  }
  return std::move(*claims);
}

}  // namespace sluice::filters::auth
