// The auth filter through a real gateway, with keys generated for this run:
// JWTs (RS256, ES256, HS256) from a JWKS file, API keys from a file, scopes
// per method, public methods, identity metadata for the backend, and hostile
// tokens that must be refused without harming the gateway.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "filters/auth/jwt_signer.h"
#include "test/support/e2e_fixture.h"

namespace sluice::test {
namespace {

using example::EchoRequest;
using example::EchoResponse;
using filters::auth::JwtSigner;
namespace fs = std::filesystem;

constexpr const char* kApiKey = "e2e-api-key-6f1c2b";
constexpr const char* kUnicodeNamedKey = "e2e-api-key-9d04e7";

int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

nlohmann::json claims(const std::string& scope = "echo.read", int64_t exp_offset = 600) {
  return {{"iss", "https://issuer.e2e"}, {"aud", "sluice-e2e"}, {"sub", "alice"},
          {"exp", now() + exp_offset},    {"scope", scope},       {"email", "alice@example.com"}};
}

// Keys for this run, their JWKS and API key files, a backend, and a gateway
// with auth in front of the router.
struct AuthFixture {
  fs::path dir;
  JwtSigner rsa = JwtSigner::generateRs256("rsa-e2e");
  JwtSigner ec = JwtSigner::generateEs256("ec-e2e");
  JwtSigner hmac = JwtSigner::generateHs256("hs-e2e");
  TestBackend backend{"primary"};
  std::unique_ptr<GatewayProcess> gateway;
  std::unique_ptr<example::Echo::Stub> stub;

  AuthFixture() {
    std::string pattern = (fs::temp_directory_path() / "sluice-auth-e2e-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    std::ofstream(dir / "jwks.json") << nlohmann::json{
        {"keys", {rsa.publicJwk(), ec.publicJwk(), hmac.publicJwk()}}}.dump();
    std::ofstream(dir / "keys.json")
        << nlohmann::json::array({{{"key", kApiKey}, {"name", "batch-job"}, {"scopes", {"echo.read"}}},
                                  {{"key", kUnicodeNamedKey}, {"name", "José batch"}, {"scopes", {"echo.read"}}}})
               .dump();

    nlohmann::json config = catchAllConfig(backend.address());
    nlohmann::json auth = {
        {"name", "auth"},
        {"config",
         {{"api_keys", {{"file", (dir / "keys.json").string()}}},
          {"jwt",
           {{"jwks_file", (dir / "jwks.json").string()},
            {"issuers", {"https://issuer.e2e"}},
            {"audiences", {"sluice-e2e"}},
            {"claims_to_metadata", {{"sub", "x-user"}, {"email", "x-user-email"}}}}},
          {"principal_metadata", "x-auth-principal"},
          {"rules", nlohmann::json::parse(R"([
              {"match": {"method": "/sluice.example.Echo/ServerStream"}, "public": true},
              {"match": {"method": "/sluice.example.Echo/Bidi"}, "scopes": ["echo.stream"]},
              {"match": {"service": "sluice.example.Echo", "headers": [{"name": "x-admin-action", "present": true}]},
               "scopes": ["echo.read", "echo.admin"]},
              {"match": {"service": "sluice.example.Echo"}, "scopes": ["echo.read"]}
          ])")}}}};
    auto& chain = config["listeners"][0]["filters"];
    chain.insert(chain.begin(), auth);
    gateway = std::make_unique<GatewayProcess>(config);
    stub = example::Echo::NewStub(makeChannel(gateway->address()));
  }
  ~AuthFixture() {
    std::error_code ec_ignored;
    fs::remove_all(dir, ec_ignored);
  }

  grpc::Status unary(const std::vector<std::pair<std::string, std::string>>& metadata,
                     EchoResponse* response = nullptr) {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    for (const auto& [k, v] : metadata) context.AddMetadata(k, v);
    EchoRequest request;
    request.set_echo_metadata(true);
    EchoResponse ignored;
    return stub->Unary(&context, request, response != nullptr ? response : &ignored);
  }
};

std::pair<std::string, std::string> bearer(const std::string& token) { return {"authorization", "Bearer " + token}; }

}  // namespace

TEST_CASE_METHOD(AuthFixture, "auth: valid JWTs of each algorithm pass, claims reach the backend",
                 "[e2e][auth]") {
  for (const JwtSigner* signer : {&rsa, &ec, &hmac}) {
    INFO("alg " << filters::auth::jwtAlgName(signer->alg()));
    EchoResponse response;
    REQUIRE_OK(unary({bearer(signer->sign(claims())), {"x-user", "mallory"}}, &response));
    const auto& seen = response.request_metadata();
    REQUIRE(seen.count("x-user") == 1);
    CHECK(seen.at("x-user") == "alice");
    CHECK(seen.at("x-user-email") == "alice@example.com");
    CHECK(seen.at("x-auth-principal") == "alice");
    CHECK(seen.count("authorization") == 0);
  }
}

TEST_CASE_METHOD(AuthFixture, "auth: callers named outside printable ASCII, or by a number, keep a principal",
                 "[e2e][auth]") {
  // Each caller needs its own principal_metadata value (rate limits key on
  // it); these used to get none and so shared one bucket.
  EchoResponse response;
  REQUIRE_OK(unary({{"x-api-key", kUnicodeNamedKey}}, &response));
  CHECK(response.request_metadata().at("x-auth-principal") == "Jos%C3%A9 batch");

  nlohmann::json unicode = claims();
  unicode["sub"] = "Zoë";
  REQUIRE_OK(unary({bearer(rsa.sign(unicode))}, &response));
  CHECK(response.request_metadata().at("x-auth-principal") == "Zo%C3%AB");
  CHECK(response.request_metadata().count("x-user") == 0);  // claims_to_metadata leaves non-ASCII out

  // A name that begins or ends with a space, which HTTP/2 forbids in a field
  // value (strict backends reset the call): the principal encodes the spaces,
  // claims_to_metadata leaves the claim out.
  nlohmann::json spaced = claims();
  spaced["sub"] = " Bob ";
  REQUIRE_OK(unary({bearer(rsa.sign(spaced))}, &response));
  CHECK(response.request_metadata().at("x-auth-principal") == "%20Bob%20");
  CHECK(response.request_metadata().count("x-user") == 0);

  nlohmann::json numeric = claims();
  numeric["sub"] = 12345;
  REQUIRE_OK(unary({bearer(rsa.sign(numeric))}, &response));
  CHECK(response.request_metadata().at("x-auth-principal") == "12345");
}

TEST_CASE_METHOD(AuthFixture, "auth: API keys from a file", "[e2e][auth]") {
  EchoResponse response;
  REQUIRE_OK(unary({{"x-api-key", kApiKey}}, &response));
  CHECK(response.request_metadata().at("x-auth-principal") == "batch-job");
  CHECK(response.request_metadata().count("x-api-key") == 0);

  grpc::Status wrong = unary({{"x-api-key", "e2e-api-key-guess"}});
  REQUIRE_STATUS(wrong, grpc::StatusCode::UNAUTHENTICATED);
  CHECK(wrong.error_message() == "invalid API key");
  // Two keys: the gateway would have checked the first, the backend seen both.
  grpc::Status twice = unary({{"x-api-key", kApiKey}, {"x-api-key", "e2e-api-key-guess"}});
  REQUIRE_STATUS(twice, grpc::StatusCode::UNAUTHENTICATED);
  CHECK(twice.error_message() == "credential \"x-api-key\" sent more than once");
  CHECK(backend.stats().calls.load() == 1);
}

// A -bin key carries the client's bytes base64-encoded on the wire: the key
// a client sends as binary metadata is compared as those bytes (it used to
// be compared as its base64 text, so no binary key could ever match).
TEST_CASE("auth: an API key sent as binary (-bin) metadata is compared as its bytes", "[e2e][auth]") {
  TestBackend backend("b");
  nlohmann::json config = catchAllConfig(backend.address());
  nlohmann::json auth = {
      {"name", "auth"},
      {"config",
       {{"api_keys",
         {{"metadata_key", "x-api-key-bin"},
          // Any bytes JSON can hold: a binary key is never trimmed or read as text
          // (such keys were refused as "could never match").
          {"keys", nlohmann::json::array({{{"key", std::string("k-secret-1")}, {"name", "binary-caller"}},
                                          {{"key", std::string("caf\xc3\xa9\t ")}, {"name", "bytes-caller"}}})}}},
        {"principal_metadata", "x-auth-principal"}}}};
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), auth);
  GatewayProcess gateway(config);
  auto stub = example::Echo::NewStub(makeChannel(gateway.address()));
  auto call = [&](const std::string& key, EchoResponse& response) {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-api-key-bin", key);
    EchoRequest request;
    request.set_echo_metadata(true);
    return stub->Unary(&context, request, &response);
  };
  EchoResponse response;
  REQUIRE_OK(call(std::string("k-secret-1"), response));
  CHECK(response.request_metadata().at("x-auth-principal") == "binary-caller");
  REQUIRE_STATUS(call("k-guess", response), grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE_OK(call(std::string("caf\xc3\xa9\t "), response));
  CHECK(response.request_metadata().at("x-auth-principal") == "bytes-caller");
  REQUIRE_STATUS(call(std::string("caf\xc3\xa9"), response), grpc::StatusCode::UNAUTHENTICATED);
  CHECK(backend.stats().calls.load() == 2);
}

TEST_CASE_METHOD(AuthFixture, "auth: missing, expired and invalid credentials are UNAUTHENTICATED",
                 "[e2e][auth]") {
  grpc::Status none = unary({});
  REQUIRE_STATUS(none, grpc::StatusCode::UNAUTHENTICATED);
  CHECK(none.error_message().find("missing credentials") != std::string::npos);

  grpc::Status expired = unary({bearer(rsa.sign(claims("echo.read", -3600)))});
  REQUIRE_STATUS(expired, grpc::StatusCode::UNAUTHENTICATED);
  CHECK(expired.error_message() == "token expired");

  nlohmann::json wrong_aud = claims();
  wrong_aud["aud"] = "someone-else";
  REQUIRE_STATUS(unary({bearer(ec.sign(wrong_aud))}), grpc::StatusCode::UNAUTHENTICATED);

  JwtSigner stranger = JwtSigner::generateEs256("ec-e2e");  // same kid, another key
  grpc::Status forged = unary({bearer(stranger.sign(claims()))});
  REQUIRE_STATUS(forged, grpc::StatusCode::UNAUTHENTICATED);
  CHECK(forged.error_message() == "token signature does not verify");
  CHECK(backend.stats().calls.load() == 0);
}

TEST_CASE_METHOD(AuthFixture, "auth: malformed tokens are refused and never hurt the gateway", "[e2e][auth]") {
  std::string good = rsa.sign(claims());
  std::string payload = good.substr(good.find('.') + 1, good.rfind('.') - good.find('.') - 1);
  using filters::auth::base64UrlEncode;
  std::vector<std::string> tokens = {
      "not-a-token",
      "a.b",
      "a.b.c.d",
      "%%%.%%%.%%%",
      base64UrlEncode(R"({"alg":"none"})") + "." + payload + ".",
      base64UrlEncode(R"({"alg":"HS256","kid":"rsa-e2e"})") + "." + payload + "." + base64UrlEncode("x"),
      base64UrlEncode("[1,2,3]") + "." + payload + ".AAAA",
      good.substr(0, good.size() - 10),
      std::string(20000, 'A') + "." + payload + ".AAAA",  // a huge header
  };
  for (const auto& token : tokens) {
    INFO("token starts " << token.substr(0, 60));
    grpc::Status status = unary({bearer(token)});
    REQUIRE_STATUS(status, grpc::StatusCode::UNAUTHENTICATED);
    CHECK(status.error_message().find(token) == std::string::npos);
  }
  REQUIRE(gateway->running());
  REQUIRE_OK(unary({bearer(good)}));
}

TEST_CASE_METHOD(AuthFixture, "auth: scopes per method, PERMISSION_DENIED, public methods", "[e2e][auth]") {
  SECTION("a bidi stream needs echo.stream") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("authorization", "Bearer " + rsa.sign(claims("echo.read")));
    auto stream = stub->Bidi(&context);
    EchoRequest request;
    stream->Write(request);
    EchoResponse response;
    CHECK_FALSE(stream->Read(&response));
    grpc::Status status = stream->Finish();
    REQUIRE_STATUS(status, grpc::StatusCode::PERMISSION_DENIED);
    CHECK(status.error_message() == "/sluice.example.Echo/Bidi needs scope echo.stream");
  }
  SECTION("with the scope the stream works") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("authorization", "Bearer " + ec.sign(claims("echo.read echo.stream")));
    auto stream = stub->Bidi(&context);
    for (int i = 0; i < 3; ++i) {
      EchoRequest request;
      request.set_payload("p" + std::to_string(i));
      REQUIRE(stream->Write(request));
      EchoResponse response;
      REQUIRE(stream->Read(&response));
      CHECK(response.payload() == "p" + std::to_string(i));
    }
    REQUIRE(stream->WritesDone());
    REQUIRE_OK(stream->Finish());
  }
  SECTION("a rule matching request metadata: the same method needs more with it") {
    const auto token = bearer(rsa.sign(claims("echo.read")));
    REQUIRE_OK(unary({token}));
    grpc::Status status = unary({token, {"x-admin-action", "purge"}});
    REQUIRE_STATUS(status, grpc::StatusCode::PERMISSION_DENIED);
    CHECK(status.error_message() == "/sluice.example.Echo/Unary needs scope echo.admin");
    REQUIRE_OK(unary({bearer(rsa.sign(claims("echo.read echo.admin"))), {"x-admin-action", "purge"}}));
  }
  SECTION("an API key without the scope") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-api-key", kApiKey);
    auto stream = stub->Bidi(&context);
    REQUIRE_STATUS(stream->Finish(), grpc::StatusCode::PERMISSION_DENIED);
  }
  SECTION("a public method needs no credentials, and forged identity is dropped") {
    grpc::ClientContext context;
    setTimeout(context, kCallTimeout);
    context.AddMetadata("x-auth-principal", "admin");
    EchoRequest request;
    request.set_echo_metadata(true);
    auto reader = stub->ServerStream(&context, request);
    EchoResponse response;
    REQUIRE(reader->Read(&response));
    CHECK(response.request_metadata().count("x-auth-principal") == 0);
    while (reader->Read(&response)) {
    }
    REQUIRE_OK(reader->Finish());
  }
}

TEST_CASE("auth: --validate names every mistake, inside files too", "[e2e][auth]") {
  fs::path dir = fs::temp_directory_path() / ("sluice-auth-validate-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "jwks.json") << R"({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]})";
  nlohmann::json config = catchAllConfig("127.0.0.1:1");
  nlohmann::json auth = {{"name", "auth"},
                         {"config",
                          {{"jwt", {{"jwks_file", (dir / "jwks.json").string()}, {"algorithms", {"PS256"}}}},
                           {"api_keys", {{"file", (dir / "missing.json").string()}, {"metadata_key", "authorization"}}},
                           {"rules", {{{"public", true}, {"scopes", {"x"}}}}}}}};
  auto& chain = config["listeners"][0]["filters"];
  chain.insert(chain.begin(), auth);
  ProcessResult result = runValidate(config.dump());
  fs::remove_all(dir);
  INFO(result.output);
  CHECK(result.exitCode == 2);
  CHECK(result.output.find("/listeners/0/filters/0/config/jwt/jwks_file: JWKS file") != std::string::npos);
  CHECK(result.output.find("/listeners/0/filters/0/config/jwt/algorithms/0") != std::string::npos);
  CHECK(result.output.find("/listeners/0/filters/0/config/api_keys/file: cannot read") != std::string::npos);
  CHECK(result.output.find("/listeners/0/filters/0/config/rules/0/scopes") != std::string::npos);
  // API keys in the field that carries the JWT would never authenticate.
  CHECK(result.output.find("/listeners/0/filters/0/config/api_keys/metadata_key: \"authorization\" carries") !=
        std::string::npos);
}

}  // namespace sluice::test
