// auth filter: API keys, JWT (HS256/RS256/ES256) verification, per-method
// rules, identity metadata, config validation, and hostile tokens. Every key
// is generated at run time.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/config_errors.h"
#include "core/registry.h"
#include "filters/auth/config.h"
#include "filters/auth/jwt.h"
#include "filters/auth/jwt_signer.h"
#include "test/unit/config_helpers.h"
#include "test/unit/fake_context.h"

namespace sluice {
namespace {

using test::FakeContext;
using test::hasError;
using json = nlohmann::json;
using filters::auth::base64UrlDecode;
using filters::auth::base64UrlEncode;
using filters::auth::JwtSigner;

// Generated once per test run: RSA key generation takes a moment.
const JwtSigner& rsaSigner() {
  static const JwtSigner s = JwtSigner::generateRs256("rsa-1");
  return s;
}
const JwtSigner& ecSigner() {
  static const JwtSigner s = JwtSigner::generateEs256("ec-1");
  return s;
}
const JwtSigner& hmacSigner() {
  static const JwtSigner s = JwtSigner::generateHs256("hs-1");
  return s;
}

json jwks() { return {{"keys", {rsaSigner().publicJwk(), ecSigner().publicJwk(), hmacSigner().publicJwk()}}}; }

int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json claims(json extra = json::object()) {
  json c = {{"iss", "https://issuer.test"}, {"aud", "sluice"}, {"sub", "user-42"},
            {"exp", now() + 600},           {"scope", "orders.read orders.write"}};
  for (auto& [k, v] : extra.items()) {
    if (v.is_null()) {
      c.erase(k);
    } else {
      c[k] = v;
    }
  }
  return c;
}

const char* kApiKey = "k3y-for-ci-0123456789";

json baseConfig() {
  return {{"api_keys",
           {{"keys",
             {{{"key", kApiKey}, {"name", "ci"}, {"scopes", {"orders.read"}}},
              {{"key", "other-key-abcdef"}, {"name", "ops"}, {"scopes", {"orders.read", "orders.write"}}}}}}},
          {"jwt",
           {{"jwks", jwks()},
            {"issuers", {"https://issuer.test"}},
            {"audiences", {"sluice", "other"}},
            {"claims_to_metadata", {{"sub", "x-user"}, {"scope", "x-scopes"}, {"roles", "x-roles"}}}}},
          {"principal_metadata", "x-auth-principal"},
          {"rules",
           {{{"match", {{"method", "/shop.Catalog/List"}}}, {"public", true}},
            {{"match", {{"method", "/shop.Orders/Place"}}}, {"scopes", {"orders.write"}}},
            {{"match", {{"service", "shop.Orders"}}}, {"scopes", {"orders.read"}}}}}};
}

using Built = test::BuiltFilter;

Built build(const json& config) { return test::buildFilter(filters::auth::AuthConfigFactory(), config); }

std::string hmacOver(const std::string& secret, const std::string& input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// Runs the filter on one call; returns the context to inspect.
struct Call {
  explicit Call(const std::string& path) : ctx(path) {}
  FakeContext ctx;  // not copyable in spirit: service() views into path()
  FilterStatus result = FilterStatus::Continue;
};
std::unique_ptr<Call> run(const Built& b, const std::string& path, const std::vector<Header>& headers) {
  auto call = std::make_unique<Call>(path);
  for (const auto& h : headers) call->ctx.requestHeaders().add(h.name, h.value);
  auto f = b.factory->createFilter(call->ctx);
  call->result = f->onRequestHeaders(call->ctx);
  return call;
}

Header bearer(const std::string& token) { return {"authorization", "Bearer " + token}; }

const Built& standard() {
  static const Built b = build(baseConfig());
  return b;
}

}  // namespace

TEST_CASE("auth: base64url round trip and strictness", "[auth][jwt]") {
  std::mt19937 rng(7);
  for (int len = 0; len < 70; ++len) {
    std::string bytes(static_cast<size_t>(len), '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    auto enc = base64UrlEncode(bytes);
    CHECK(enc.find_first_of("+/=") == std::string::npos);
    CHECK(base64UrlDecode(enc) == bytes);
  }
  CHECK_FALSE(base64UrlDecode("ab+c"));
  CHECK_FALSE(base64UrlDecode("a"));
  CHECK_FALSE(base64UrlDecode("ab c"));
  CHECK_FALSE(base64UrlDecode("QR"));  // non-zero leftover bits
  CHECK(base64UrlDecode("QQ") == std::string("A"));
  CHECK_FALSE(base64UrlDecode("QQ=="));  // JWS never pads
  CHECK(base64UrlDecode("") == std::string());
}

TEST_CASE("auth: API keys", "[auth]") {
  const Built& b = standard();
  INFO(b.errors.format());
  REQUIRE(b.factory);

  SECTION("a valid key passes, names the caller and is not forwarded") {
    auto c = run(b, "/shop.Orders/Get", {{"x-api-key", kApiKey}, {"x-auth-principal", "admin"}});
    CHECK(c->result == FilterStatus::Continue);
    CHECK_FALSE(c->ctx.ended());
    CHECK(*c->ctx.requestHeaders().get("x-auth-principal") == "ci");
    CHECK(c->ctx.requestHeaders().get("x-api-key") == nullptr);
  }
  SECTION("an unknown key is UNAUTHENTICATED and the message does not echo it") {
    auto c = run(b, "/shop.Orders/Get", {{"x-api-key", "guess-0123456789"}});
    CHECK(c->result == FilterStatus::StopIteration);
    CHECK(c->ctx.status() == StatusCode::Unauthenticated);
    CHECK(c->ctx.statusMessage() == "invalid API key");
  }
  SECTION("no credentials at all") {
    auto c = run(b, "/shop.Orders/Get", {{"x-auth-principal", "admin"}});
    CHECK(c->ctx.status() == StatusCode::Unauthenticated);
    CHECK(c->ctx.statusMessage().find("missing credentials") != std::string::npos);
    CHECK(c->ctx.statusMessage().find("x-api-key") != std::string::npos);
  }
  SECTION("a valid key without the method's scope is PERMISSION_DENIED") {
    auto c = run(b, "/shop.Orders/Place", {{"x-api-key", kApiKey}});
    CHECK(c->ctx.status() == StatusCode::PermissionDenied);
    CHECK(c->ctx.statusMessage() == "/shop.Orders/Place needs scope orders.write");
    CHECK(c->ctx.statusMessage().find(kApiKey) == std::string::npos);
  }
  SECTION("a key with the scope passes") {
    auto c = run(b, "/shop.Orders/Place", {{"x-api-key", "other-key-abcdef"}});
    CHECK_FALSE(c->ctx.ended());
    CHECK(*c->ctx.requestHeaders().get("x-auth-principal") == "ops");
  }
  SECTION("public methods need nothing, and forged identity is still removed") {
    auto c = run(b, "/shop.Catalog/List", {{"x-auth-principal", "admin"}, {"x-user", "root"}});
    CHECK(c->result == FilterStatus::Continue);
    CHECK_FALSE(c->ctx.ended());
    CHECK(c->ctx.requestHeaders().get("x-auth-principal") == nullptr);
    CHECK(c->ctx.requestHeaders().get("x-user") == nullptr);
  }
  SECTION("methods no rule matches need a verified caller, no scope") {
    auto c = run(b, "/other.Svc/Do", {});
    CHECK(c->ctx.status() == StatusCode::Unauthenticated);
    auto ok = run(b, "/other.Svc/Do", {{"x-api-key", kApiKey}});
    CHECK_FALSE(ok->ctx.ended());
  }
}

TEST_CASE("auth: JWT with each algorithm", "[auth][jwt]") {
  const Built& b = standard();
  REQUIRE(b.factory);
  for (const JwtSigner* signer : {&rsaSigner(), &ecSigner(), &hmacSigner()}) {
    DYNAMIC_SECTION("alg " << filters::auth::jwtAlgName(signer->alg())) {
      std::string token = signer->sign(claims({{"roles", json::array({"a", "b"})}}));
      auto c = run(b, "/shop.Orders/Place", {bearer(token), {"x-user", "forged"}});
      INFO(c->ctx.statusMessage());
      CHECK(c->result == FilterStatus::Continue);
      CHECK_FALSE(c->ctx.ended());
      auto& h = c->ctx.requestHeaders();
      CHECK(*h.get("x-user") == "user-42");
      CHECK(*h.get("x-auth-principal") == "user-42");
      CHECK(*h.get("x-scopes") == "orders.read orders.write");
      CHECK(*h.get("x-roles") == R"(["a","b"])");
      CHECK(h.get("authorization") == nullptr);  // not forwarded by default
    }
  }
}

TEST_CASE("auth: JWT claims are checked after the signature", "[auth][jwt]") {
  const Built& b = standard();
  auto status = [&](const std::string& token, const std::string& path = "/shop.Orders/Get") {
    auto c = run(b, path, {bearer(token)});
    return std::make_pair(c->ctx.ended() ? c->ctx.status() : StatusCode::Ok, c->ctx.statusMessage());
  };
  const JwtSigner& s = rsaSigner();
  CHECK(status(s.sign(claims())).first == StatusCode::Ok);
  CHECK(status(s.sign(claims({{"exp", now() - 3600}}))).second == "token expired");
  CHECK(status(s.sign(claims({{"exp", now() - 30}}))).first == StatusCode::Ok);  // within the 60 s skew
  CHECK(status(s.sign(claims({{"nbf", now() + 3600}}))).second == "token not valid yet (nbf)");
  CHECK(status(s.sign(claims({{"exp", nullptr}}))).second == "token has no expiry (exp)");
  CHECK(status(s.sign(claims({{"exp", "tomorrow"}}))).second.find("malformed") != std::string::npos);
  CHECK(status(s.sign(claims({{"iss", "https://evil.test"}}))).second == "token issuer is not accepted");
  CHECK(status(s.sign(claims({{"iss", nullptr}}))).second == "token issuer is not accepted");
  CHECK(status(s.sign(claims({{"aud", "someone-else"}}))).second == "token audience is not accepted");
  CHECK(status(s.sign(claims({{"aud", {"x", "other"}}}))).first == StatusCode::Ok);
  CHECK(status(s.sign(claims({{"aud", nullptr}}))).second == "token audience is not accepted");
  auto denied = status(s.sign(claims({{"scope", "orders.read"}})), "/shop.Orders/Place");
  CHECK(denied.first == StatusCode::PermissionDenied);
  auto no_scope = status(s.sign(claims({{"scope", nullptr}, {"scp", json::array({"orders.read"})}})));
  CHECK(no_scope.first == StatusCode::PermissionDenied);  // "scp" is not the configured scope claim
}

TEST_CASE("auth: hostile and malformed tokens are UNAUTHENTICATED", "[auth][jwt]") {
  const Built& b = standard();
  const JwtSigner& rsa = rsaSigner();
  std::string good = rsa.sign(claims());
  auto first_dot = good.find('.');
  auto second_dot = good.rfind('.');
  std::string header = good.substr(0, first_dot);
  std::string payload = good.substr(first_dot + 1, second_dot - first_dot - 1);
  std::string sig = good.substr(second_dot + 1);
  auto enc = [](const json& j) { return base64UrlEncode(j.dump()); };

  // An HS256 token "signed" with the RSA public key as the secret: the
  // classic algorithm confusion attack.
  std::string rsa_n = rsa.publicJwk()["n"];
  std::string confused_input = enc({{"alg", "HS256"}, {"kid", "rsa-1"}}) + "." + payload;
  std::string confused_without_kid = enc({{"alg", "HS256"}}) + "." + payload;

  // A forged token whose signature is another key's.
  JwtSigner stranger = JwtSigner::generateEs256("ec-1");
  std::string forged = stranger.sign(claims());

  std::vector<std::pair<std::string, std::string>> cases = {
      {"", "authorization must be"},
      {"abc", "three dot-separated parts"},
      {"a.b", "three dot-separated parts"},
      {"a.b.c.d", "three dot-separated parts"},
      {header + "." + payload, "three dot-separated parts"},
      {"..", "empty part"},
      {"!!!." + payload + "." + sig, "header is not base64url"},
      {enc("just a string") + "." + payload + "." + sig, "header is not base64url"},
      {enc({{"typ", "JWT"}}) + "." + payload + "." + sig, "no \"alg\""},
      {enc({{"alg", "none"}}) + "." + payload + ".", "alg none"},
      {enc({{"alg", "NoNe"}}) + "." + payload + "." + sig, "alg none"},
      {enc({{"alg", "RS512"}}) + "." + payload + "." + sig, "algorithm is not accepted"},
      {enc({{"alg", 256}}) + "." + payload + "." + sig, "no \"alg\""},
      {enc({{"alg", "RS256"}, {"kid", 5}}) + "." + payload + "." + sig, "kid"},
      {enc({{"alg", "RS256"}, {"kid", "rsa-1"}, {"crit", {"exp"}}}) + "." + payload + "." + sig, "critical"},
      {enc({{"alg", "RS256"}, {"kid", "nope"}}) + "." + payload + "." + sig, "no key for this token"},
      {enc({{"alg", "ES256"}, {"kid", "rsa-1"}}) + "." + payload + "." + sig, "no key for this token"},
      {header + "." + payload + ".", "not signed"},
      {header + "." + payload + ".%%%", "signature is not base64url"},
      {header + "." + payload + "." + base64UrlEncode(base64UrlDecode(sig)->substr(0, 250)), "signature does not verify"},
      {header + "." + enc(claims({{"sub", "admin"}})) + "." + sig, "signature does not verify"},
      {confused_input + "." + base64UrlEncode(std::string(32, 'x')), "no key for this token"},
      {confused_without_kid + "." + base64UrlEncode(hmacOver(rsa_n, confused_without_kid)), "signature does not verify"},
      {forged, "signature does not verify"},
      {header + ".!!." + sig, "signature does not verify"},
      {std::string(9000, 'a'), "token too large"},
      {enc(json::parse(R"({"alg":"RS256","kid":"rsa-1","x":)" + std::string(2000, '[') + std::string(2000, ']') +
                       "}")) +
           "." + payload + "." + sig,
       "signature does not verify"},  // deep nesting: parsed and freed without trouble
  };
  for (const auto& [token, expected] : cases) {
    INFO("token: " << token.substr(0, 120) << " expected: " << expected);
    auto c = run(b, "/shop.Orders/Get", {bearer(token)});
    CHECK(c->result == FilterStatus::StopIteration);
    CHECK(c->ctx.status() == StatusCode::Unauthenticated);
    INFO("message: " << c->ctx.statusMessage());
    CHECK(c->ctx.statusMessage().find(expected) != std::string::npos);
    if (token.size() > 8) CHECK(c->ctx.statusMessage().find(token) == std::string::npos);
  }

  SECTION("other authorization schemes") {
    for (std::string value : {"Basic dXNlcjpwYXNz", "Bearer", "bearer    ", "Token abc"}) {
      auto c = run(b, "/shop.Orders/Get", {{"authorization", value}});
      CHECK(c->ctx.status() == StatusCode::Unauthenticated);
    }
    auto lower = run(b, "/shop.Orders/Get", {{"authorization", "bearer " + good}});
    CHECK_FALSE(lower->ctx.ended());
  }
}

TEST_CASE("auth: random garbage never crashes the verifier", "[auth][jwt]") {
  const Built& b = standard();
  std::mt19937 rng(1234);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x01\xff";
  std::string good = ecSigner().sign(claims());
  for (int i = 0; i < 2000; ++i) {
    std::string token;
    if (i % 2 == 0) {
      size_t len = rng() % 300;
      for (size_t k = 0; k < len; ++k) token += alphabet[rng() % alphabet.size()];
    } else {
      // Mutate a valid token: flip, drop or insert characters.
      token = good;
      for (int m = 0; m < 1 + static_cast<int>(rng() % 4); ++m) {
        size_t pos = rng() % token.size();
        switch (rng() % 3) {
          case 0: token[pos] = alphabet[rng() % alphabet.size()]; break;
          case 1: token.erase(pos, 1); break;
          default: token.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        }
      }
      // The filter trims spaces around the token (as around any header value).
      const size_t first = token.find_first_not_of(' '), last = token.find_last_not_of(' ');
      if (first != std::string::npos && token.substr(first, last - first + 1) == good) continue;
    }
    auto c = run(b, "/shop.Orders/Get", {bearer(token)});
    // Every other text is rejected: base64url is decoded strictly (no
    // ignored characters, unused bits zero), so no other spelling of the
    // valid token exists.
    INFO(token);
    CHECK(c->ctx.ended());
    CHECK(c->ctx.status() == StatusCode::Unauthenticated);
  }
}

TEST_CASE("auth: forward_credentials keeps the token for the backend", "[auth]") {
  json config = baseConfig();
  config["forward_credentials"] = true;
  auto b = build(config);
  REQUIRE(b.factory);
  std::string token = hmacSigner().sign(claims());
  auto c = run(b, "/shop.Orders/Get", {bearer(token)});
  CHECK_FALSE(c->ctx.ended());
  CHECK(*c->ctx.requestHeaders().get("authorization") == "Bearer " + token);
}

TEST_CASE("auth: without jwt, authorization is not the gateway's and passes on, the API key does not", "[auth]") {
  json config = baseConfig();
  config.erase("jwt");
  auto b = build(config);
  REQUIRE(b.factory);
  auto c = run(b, "/shop.Orders/Get", {{"x-api-key", kApiKey}, {"authorization", "Basic backend-own"}});
  CHECK_FALSE(c->ctx.ended());
  REQUIRE(c->ctx.requestHeaders().get("authorization") != nullptr);
  CHECK(*c->ctx.requestHeaders().get("authorization") == "Basic backend-own");
  CHECK(c->ctx.requestHeaders().get("x-api-key") == nullptr);
}

TEST_CASE("auth: API keys from a file, JWKS from a file", "[auth]") {
  auto dir = std::filesystem::temp_directory_path() / ("sluice-auth-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto keys = dir / "keys.json";
  auto jwks_file = dir / "jwks.json";
  std::ofstream(keys) << json::array({{{"key", "from-file-123456"}, {"name", "filed"}}}).dump();
  std::ofstream(jwks_file) << json{{"keys", {ecSigner().publicJwk()}}}.dump();
  json config = {{"api_keys", {{"file", keys.string()}, {"metadata_key", "x-key"}}},
                 {"jwt", {{"jwks_file", jwks_file.string()}}}};
  auto b = build(config);
  INFO(b.errors.format());
  REQUIRE(b.factory);
  CHECK_FALSE(run(b, "/a.B/C", {{"x-key", "from-file-123456"}})->ctx.ended());
  CHECK(run(b, "/a.B/C", {{"x-api-key", "from-file-123456"}})->ctx.ended());
  CHECK_FALSE(run(b, "/a.B/C", {bearer(ecSigner().sign(claims()))})->ctx.ended());
  CHECK(run(b, "/a.B/C", {bearer(rsaSigner().sign(claims()))})->ctx.ended());

  SECTION("mistakes inside the files are reported at the config key, naming the file") {
    std::ofstream(keys) << R"([{"key": "k1", "name": "a"}, {"key": "k1", "name": "b"}, {"name": "c"}])";
    std::ofstream(jwks_file) << R"({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]})";
    auto bad = build(config);
    CHECK_FALSE(bad.factory);
    INFO(bad.errors.format());
    CHECK(hasError(bad.errors, "/f/config/api_keys/file", "at /1/key: the key of \"b\" is listed twice"));
    CHECK(hasError(bad.errors, "/f/config/api_keys/file", "at /2/key: required key is missing"));
    CHECK(hasError(bad.errors, "/f/config/jwt/jwks_file", "at /keys/0/k: an HS256 secret needs at least 32 bytes"));
    for (const auto& e : bad.errors.all()) CHECK(e.message.find("k1") == std::string::npos);
  }
  SECTION("the files are read as strictly as the config: no key twice, no FIFO") {
    // JSON keeps the last "key": the entry would silently hold another key.
    std::ofstream(keys) << R"([{"key": "first-key-123456", "key": "other-key-123456", "name": "a"}])";
    std::filesystem::remove(jwks_file);
    REQUIRE(::mkfifo(jwks_file.c_str(), 0600) == 0);
    auto bad = build(config);
    CHECK_FALSE(bad.factory);
    INFO(bad.errors.format());
    CHECK(hasError(bad.errors, "/f/config/api_keys/file", "at /0/key: duplicate key"));
    CHECK(hasError(bad.errors, "/f/config/jwt/jwks_file", "it is not a regular file"));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("auth: JWKS validation", "[auth][jwt]") {
  auto jwksErrors = [](const json& doc) {
    ConfigErrors errors;
    auto parsed = filters::auth::Jwks::parse(doc, "JWKS", "/p", errors);
    return std::make_pair(parsed != nullptr, errors.format());
  };
  json ec = ecSigner().publicJwk();
  json off_curve = ec;
  std::string x = *base64UrlDecode(ec["x"].get<std::string>());
  x[31] = static_cast<char>(x[31] ^ 1);
  off_curve["x"] = base64UrlEncode(x);
  json small_rsa = JwtSigner::generateRs256("small", 1024).publicJwk();

  CHECK(jwksErrors(json{{"keys", {ec}}}).first);
  CHECK(jwksErrors(json{{"keys", json::array()}}).second.find("no usable key") != std::string::npos);
  CHECK(jwksErrors(json::array()).second.find("expected a JWKS document") != std::string::npos);
  CHECK(jwksErrors(json{{"keys", {off_curve}}}).second.find("not on the curve") != std::string::npos);
  CHECK(jwksErrors(json{{"keys", {small_rsa}}}).second.find("at least 2048 bits") != std::string::npos);
  CHECK(jwksErrors(json{{"keys", {{{"kid", "x"}}}}}).second.find("/keys/0: \"kty\" is required") != std::string::npos);
  CHECK(jwksErrors(json{{"keys", {{{"kty", "RSA"}, {"n", "!!"}, {"e", "AQAB"}}}}}).second.find("/keys/0/n") !=
        std::string::npos);
  // Keys Sluice does not use are skipped, not refused.
  json enc_key = ec;
  enc_key["use"] = "enc";
  auto mixed = jwksErrors(json{{"keys", {enc_key, {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "AA"}}, ec}}});
  INFO(mixed.second);
  CHECK(mixed.first);

  // A token is checked against 8 keys at most: a ninth that one token
  // would try (same algorithm and kid, or same algorithm and no kid) could
  // never verify anything, so the JWKS is refused; distinct kids are fine.
  auto nine = [](const std::function<std::string(int)>& kid) {
    json keys = json::array();
    for (int i = 0; i < 9; ++i) {
      json k = JwtSigner::generateHs256("k").publicJwk();
      if (kid(i).empty()) k.erase("kid"); else k["kid"] = kid(i);
      keys.push_back(k);
    }
    return json{{"keys", keys}};
  };
  auto unnamed = jwksErrors(nine([](int) { return std::string(); }));
  CHECK_FALSE(unnamed.first);
  CHECK_THAT(unnamed.second, Catch::Contains("more than 8 HS256 keys without a kid"));
  auto shared = jwksErrors(nine([](int) { return std::string("main"); }));
  CHECK_FALSE(shared.first);
  CHECK_THAT(shared.second, Catch::Contains("more than 8 HS256 keys with kid \"main\" or without a kid"));
  CHECK(jwksErrors(nine([](int i) { return "k" + std::to_string(i); })).first);
  // A token with kid "a" tries the 5 keys with it, then the 4 without one.
  auto mixed_kids = jwksErrors(nine([](int i) { return i < 5 ? std::string("a") : std::string(); }));
  CHECK_FALSE(mixed_kids.first);
  CHECK_THAT(mixed_kids.second, Catch::Contains("more than 8 HS256 keys with kid \"a\" or without a kid"));
}

TEST_CASE("auth: a token with a kid verifies against a key without one", "[auth][jwt]") {
  // Many signers add a kid that a hand-written JWKS does not name.
  json jwk = hmacSigner().publicJwk();
  jwk.erase("kid");
  ConfigErrors errors;
  auto keys = filters::auth::Jwks::parse(json{{"keys", {jwk}}}, "JWKS", "/p", errors);
  REQUIRE(keys);
  const std::string token = hmacSigner().sign(claims());  // kid "hs-1"
  auto verified = filters::auth::verifyJwt(token, *keys, filters::auth::JwtRules{}, now());
  INFO(verified.status().message());
  CHECK(verified.isOk());
  // A key with another kid is still not tried.
  jwk["kid"] = "other";
  auto other = filters::auth::Jwks::parse(json{{"keys", {jwk}}}, "JWKS", "/p", errors);
  REQUIRE(other);
  CHECK_FALSE(filters::auth::verifyJwt(token, *other, filters::auth::JwtRules{}, now()).isOk());
}

TEST_CASE("auth: config mistakes are all reported with their paths", "[auth]") {
  SECTION("no credentials configured") {
    auto b = build(json::object());
    CHECK_FALSE(b.factory);
    CHECK(hasError(b.errors, "/f/config", "give \"api_keys\", \"jwt\" or both"));
  }
  SECTION("identity keys cannot be credential keys") {
    json config = baseConfig();
    config["principal_metadata"] = "x-api-key";
    config["jwt"]["claims_to_metadata"]["sub"] = "authorization";
    auto b = build(config);
    CHECK_FALSE(b.factory);
    CHECK(hasError(b.errors, "/f/config/principal_metadata", "carries credentials"));
    CHECK(hasError(b.errors, "/f/config/jwt/claims_to_metadata/sub", "carries credentials"));
  }
  SECTION("configs that could never authenticate anyone, or would set one key twice") {
    json config = baseConfig();
    config["api_keys"]["keys"] = json::parse(R"([{"key": "caf\u00e9", "name": "u"}, {"key": " edge", "name": "e"},
                                                 {"key": "a\tb", "name": "t"}])");
    config["jwt"]["scope_claim"] = "";
    config["jwt"]["principal_claim"] = "";
    config["jwt"]["claims_to_metadata"] = json::parse(R"({"sub": "x-user", "email": "x-user", "tenant": "x-principal"})");
    config["principal_metadata"] = "x-principal";
    auto b = build(config);
    CHECK_FALSE(b.factory);
    INFO(b.errors.format());
    for (int i : {0, 1, 2}) {
      CHECK(hasError(b.errors, "/f/config/api_keys/keys/" + std::to_string(i) + "/key", "could never match"));
    }
    CHECK(hasError(b.errors, "/f/config/jwt/scope_claim", "cannot be empty"));
    CHECK(hasError(b.errors, "/f/config/jwt/principal_claim", "cannot be empty"));
    CHECK((hasError(b.errors, "/f/config/jwt/claims_to_metadata/sub", "\"x-user\" is set from claim \"email\" already") ||
           hasError(b.errors, "/f/config/jwt/claims_to_metadata/email", "\"x-user\" is set from claim \"sub\" already")));
    CHECK(hasError(b.errors, "/f/config/jwt/claims_to_metadata/tenant", "is principal_metadata already"));
    config = baseConfig();
    config["api_keys"]["keys"] = json::array();
    b = build(config);
    CHECK(hasError(b.errors, "/f/config/api_keys", "no API keys"));
  }
  SECTION("the request id is the listener's") {
    json config = baseConfig();
    config["principal_metadata"] = "x-request-id";
    auto b = build(config);
    CHECK_FALSE(b.factory);
    CHECK(hasError(b.errors, "/f/config/principal_metadata", "the listener's to set"));
  }
  SECTION("rules cannot match on the identity metadata the filter clears") {
    json config = baseConfig();
    config["principal_metadata"] = "x-auth-principal";
    config["jwt"]["claims_to_metadata"]["sub"] = "x-user";
    config["rules"] = json::parse(R"([
        {"match": {"prefix": "/", "headers": [{"name": "X-Auth-Principal", "present": true}]}, "scopes": ["a"]},
        {"match": {"prefix": "/", "headers": [{"name": "x-other", "present": true}, {"name": "x-user", "exact": "bob"}]},
         "public": true}])");
    auto b = build(config);
    CHECK_FALSE(b.factory);
    INFO(b.errors.format());
    CHECK(hasError(b.errors, "/f/config/rules/0/match/headers/0/name", "x-auth-principal is metadata this filter sets"));
    CHECK(hasError(b.errors, "/f/config/rules/1/match/headers/1/name", "x-user is metadata this filter sets"));
  }
  SECTION("many mistakes at once") {
    auto b = build(json::parse(R"({
      "api_keys": {"metadata_key": "Bad Key", "keys": [{"key": "", "name": "x"}, {"key": "abc", "name": "y", "scopes": [1]}]},
      "jwt": {"jwks": {"keys": []}, "jwks_file": "/x", "algorithms": ["none"], "clock_skew_seconds": -1,
              "claims_to_metadata": {"sub": "grpc-status"}, "issuer": "typo"},
      "principal_metadata": ":authority",
      "rules": [{"match": {"prefix": "x", "service": "y"}, "public": true, "scopes": ["a"]}, {"public": "yes"}],
      "unknown": 1
    })"));
    CHECK_FALSE(b.factory);
    INFO(b.errors.format());
    CHECK(hasError(b.errors, "/f/config/api_keys/metadata_key"));
    CHECK(hasError(b.errors, "/f/config/api_keys/keys/0/key", "cannot be empty"));
    CHECK(hasError(b.errors, "/f/config/api_keys/keys/1/scopes/0"));
    CHECK(hasError(b.errors, "/f/config/jwt", "exactly one of \"jwks_file\" or \"jwks\""));
    CHECK(hasError(b.errors, "/f/config/jwt/algorithms/0", "unsupported algorithm"));
    CHECK(hasError(b.errors, "/f/config/jwt/clock_skew_seconds"));
    CHECK(hasError(b.errors, "/f/config/jwt/claims_to_metadata/sub"));
    CHECK(hasError(b.errors, "/f/config/jwt/issuer", "unknown key"));
    CHECK(hasError(b.errors, "/f/config/principal_metadata"));
    CHECK(hasError(b.errors, "/f/config/rules/0/match", "exactly one"));
    CHECK(hasError(b.errors, "/f/config/rules/0/scopes", "public rule cannot require scopes"));
    CHECK(hasError(b.errors, "/f/config/rules/1/public", "expected true or false"));
    CHECK(hasError(b.errors, "/f/config/unknown", "unknown key"));
  }
}

}  // namespace sluice
