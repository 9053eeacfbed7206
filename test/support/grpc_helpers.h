// grpc++ client-side helpers shared by the e2e tests: channels, deadlines,
// readable statuses, metadata lookups and calls to arbitrary method names.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"
#include "test/support/raw_h2_client.h"

namespace sluice::test {

// A channel with its own connection (no subchannel sharing between channels,
// so "another connection" in a test really is one) and no message size limit.
std::shared_ptr<grpc::Channel> makeChannel(const std::string& address);

// makeChannel, connected (READY) before it is returned; throws after 5 s.
// grpc++ 1.51 (Debian 12) sometimes takes a connect still in progress for a
// failed one: it reads errno after other calls have overwritten it (fixed
// upstream in grpc pull request 35064), closes the socket, and fails at once
// every call waiting for that connection. Seen with several channels
// connecting at the same moment (7 runs in 600 of a test under heavy load);
// waiting for READY rides it out, as the channel connects again after its
// backoff.
std::shared_ptr<grpc::Channel> makeConnectedChannel(const std::string& address);

// Every RPC in the e2e tests has a deadline, so a broken gateway fails a test
// instead of hanging the suite.
void setTimeout(grpc::ClientContext& context, std::chrono::milliseconds timeout);

std::string statusCodeName(grpc::StatusCode code);
// "UNAVAILABLE (14): no healthy endpoint"
std::string describe(const grpc::Status& status);

// The first value of `key`, or nullopt.
std::optional<std::string> metadataValue(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata, const std::string& key);

// A unary call to any method name, with EchoRequest/EchoResponse as the
// message types: reaches services and methods no stub knows.
grpc::Status callUnaryMethod(grpc::Channel& channel, const std::string& method,
                             grpc::ClientContext& context, const example::EchoRequest& request,
                             example::EchoResponse* response);

// A unary Echo call over a raw HTTP/2 client with `metadata` sent exactly as
// given (a -bin value's base64 as written, padded or not, where grpc++ would
// encode it its own way): the name of the backend that answered. Fails the
// test unless the call succeeded.
std::string rawEchoBackend(RawH2Client& client, const HeaderList& metadata);

// grpc.health.v1.Health/Check for `service`, its request and response
// encoded here by hand (no generated health stubs in Debian's grpc++): the
// status the call ended with, and in `serving` the answer: "SERVING",
// "NOT_SERVING", or the response's bytes in hex when it is neither.
grpc::Status checkHealth(grpc::Channel& channel, const std::string& service, std::string* serving);

// A grpc.health.v1.Health/Watch call for `service` (encoded as checkHealth
// does), read one answer at a time.
class HealthWatcher {
 public:
  HealthWatcher(grpc::Channel& channel, const std::string& service, std::chrono::milliseconds timeout);
  // Cancels the call if it is still going.
  ~HealthWatcher();
  // The next answer: "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" or the
  // bytes in hex; nullopt once the call ended (then finish()).
  std::optional<std::string> next();
  grpc::Status finish();

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader_;
  bool finished_ = false;
};

}  // namespace sluice::test

namespace Catch {
template <>
struct StringMaker<grpc::StatusCode> {
  static std::string convert(grpc::StatusCode code) { return sluice::test::statusCodeName(code); }
};
// Catch2 v2 prints optionals as {?} unless told otherwise; these are the ones
// the e2e tests compare.
template <>
struct StringMaker<std::optional<std::string>> {
  static std::string convert(const std::optional<std::string>& value) {
    return value ? ::Catch::Detail::stringify(*value) : "<none>";
  }
};
template <>
struct StringMaker<std::optional<int>> {
  static std::string convert(const std::optional<int>& value) {
    return value ? std::to_string(*value) : "<none>";
  }
};
}  // namespace Catch

// Asserts a grpc++ status code and shows the whole status when it differs.
#define REQUIRE_STATUS(status, code)                                     \
  do {                                                                   \
    const ::grpc::Status sluiceStatus_ = (status);                       \
    INFO("grpc status: " << ::sluice::test::describe(sluiceStatus_));    \
    REQUIRE(sluiceStatus_.error_code() == (code));                       \
  } while (false)
#define REQUIRE_OK(status) REQUIRE_STATUS(status, ::grpc::StatusCode::OK)
