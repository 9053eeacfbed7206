#include "filters/auth/jwt_signer.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <stdexcept>

namespace sluice::filters::auth {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const char* what) {
  ERR_clear_error();
  throw std::runtime_error(std::string("JwtSigner: ") + what);
}

std::string bnBytes(const EVP_PKEY* key, const char* param, int pad_to = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &bn) != 1) fail("reading a key parameter");
  int len = pad_to > 0 ? pad_to : BN_num_bytes(bn);
  std::string out(static_cast<size_t>(len), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len);
  BN_free(bn);
  return out;
}

}  // namespace

JwtSigner JwtSigner::generateRs256(std::string kid, int bits) {
  JwtSigner s(JwtAlg::RS256, std::move(kid));
  s.key_.reset(EVP_RSA_gen(static_cast<unsigned int>(bits)));
  if (!s.key_) fail("RSA key generation");
  return s;
}

JwtSigner JwtSigner::generateEs256(std::string kid) {
  JwtSigner s(JwtAlg::ES256, std::move(kid));
  s.key_.reset(EVP_EC_gen("P-256"));
  if (!s.key_) fail("P-256 key generation");
  return s;
}

JwtSigner JwtSigner::generateHs256(std::string kid) {
  JwtSigner s(JwtAlg::HS256, std::move(kid));
  s.secret_.resize(32);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.secret_.data()), 32) != 1) fail("random bytes");
  return s;
}

json JwtSigner::publicJwk() const {
  json jwk = {{"alg", std::string(jwtAlgName(alg_))}, {"use", "sig"}};
  if (!kid_.empty()) jwk["kid"] = kid_;
  switch (alg_) {
    case JwtAlg::HS256:
      jwk["kty"] = "oct";
      jwk["k"] = base64UrlEncode(secret_);
      break;
    case JwtAlg::RS256:
      jwk["kty"] = "RSA";
      jwk["n"] = base64UrlEncode(bnBytes(key_.get(), OSSL_PKEY_PARAM_RSA_N));
      jwk["e"] = base64UrlEncode(bnBytes(key_.get(), OSSL_PKEY_PARAM_RSA_E));
      break;
    case JwtAlg::ES256:
      jwk["kty"] = "EC";
      jwk["crv"] = "P-256";
      jwk["x"] = base64UrlEncode(bnBytes(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32));
      jwk["y"] = base64UrlEncode(bnBytes(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32));
      break;
  }
  return jwk;
}

std::string JwtSigner::signature(std::string_view input) const {
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (alg_ == JwtAlg::HS256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()), data, input.size(), mac, &len)) {
      fail("HMAC");
    }
    return std::string(reinterpret_cast<char*>(mac), len);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  if (ctx == nullptr || EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx, nullptr, &len, data, input.size()) != 1) {
    EVP_MD_CTX_free(ctx);
    fail("signing");
  }
  sig.resize(len);
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, data, input.size()) != 1) {
    EVP_MD_CTX_free(ctx);
    fail("signing");
  }
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  if (alg_ == JwtAlg::RS256) return sig;
  // DER ECDSA-Sig-Value -> JWS r || s, 32 bytes each.
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  if (ecdsa == nullptr) fail("decoding an ECDSA signature");
  std::string out(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(out.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(out.data()) + 32, 32);
  ECDSA_SIG_free(ecdsa);
  return out;
}

std::string JwtSigner::sign(const json& claims, const json& header_overrides) const {
  json header = {{"alg", std::string(jwtAlgName(alg_))}, {"typ", "JWT"}};
  if (!kid_.empty()) header["kid"] = kid_;
  for (const auto& [k, v] : header_overrides.items()) {
    if (v.is_null()) {
      header.erase(k);
    } else {
      header[k] = v;
    }
  }
  std::string input = base64UrlEncode(header.dump()) + "." + base64UrlEncode(claims.dump());
  return input + "." + base64UrlEncode(signature(input));
}

}  // namespace sluice::filters::auth
