#include "test/support/grpc_helpers.h"

#include <chrono>
#include <stdexcept>

#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <grpcpp/impl/codegen/sync_stream.h>

namespace sluice::test {

std::shared_ptr<grpc::Channel> makeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // No retries: a test must see the first failure, not a retried success.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::shared_ptr<grpc::Channel> makeConnectedChannel(const std::string& address) {
  std::shared_ptr<grpc::Channel> channel = makeChannel(address);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
    throw std::runtime_error("no connection to " + address + " within 5 s");
  }
  return channel;
}

void setTimeout(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

std::string statusCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",   "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  if (index >= 0 && index <= 16) return kNames[index];
  return "code " + std::to_string(index);
}

std::string describe(const grpc::Status& status) {
  return statusCodeName(status.error_code()) + " (" +
         std::to_string(static_cast<int>(status.error_code())) + "): " + status.error_message();
}

std::optional<std::string> metadataValue(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata, const std::string& key) {
  auto it = metadata.find(key);
  if (it == metadata.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

grpc::Status callUnaryMethod(grpc::Channel& channel, const std::string& method,
                             grpc::ClientContext& context, const example::EchoRequest& request,
                             example::EchoResponse* response) {
  // What generated stubs do, with a method name of our choosing.
  const grpc::internal::RpcMethod rpcMethod(method.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
  return grpc::internal::BlockingUnaryCall<example::EchoRequest, example::EchoResponse>(
      &channel, rpcMethod, &context, request, response);
}

namespace {

grpc::ByteBuffer healthRequest(const std::string& service) {
  std::string request;
  if (!service.empty()) {  // field 1, length-delimited (names here are under 128 bytes)
    request += '\x0a';
    request += static_cast<char>(service.size());
    request += service;
  }
  grpc::Slice slice(request);
  return grpc::ByteBuffer(&slice, 1);
}

std::string describeHealthResponse(const grpc::ByteBuffer& response) {
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes == std::string("\x08\x01", 2)) return "SERVING";
  if (bytes == std::string("\x08\x02", 2)) return "NOT_SERVING";
  if (bytes == std::string("\x08\x03", 2)) return "SERVICE_UNKNOWN";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  return hex;
}

}  // namespace

grpc::Status checkHealth(grpc::Channel& channel, const std::string& service, std::string* serving) {
  grpc::ClientContext context;
  setTimeout(context, std::chrono::seconds(5));
  grpc::ByteBuffer response;
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check", grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      &channel, method, &context, healthRequest(service), &response);
  serving->clear();
  if (status.ok()) *serving = describeHealthResponse(response);
  return status;
}

HealthWatcher::HealthWatcher(grpc::Channel& channel, const std::string& service, std::chrono::milliseconds timeout) {
  setTimeout(context_, timeout);
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Watch", grpc::internal::RpcMethod::SERVER_STREAMING);
  reader_.reset(grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(&channel, method, &context_,
                                                                              healthRequest(service)));
}

HealthWatcher::~HealthWatcher() {
  if (finished_) return;
  context_.TryCancel();
  grpc::ByteBuffer ignored;
  while (reader_->Read(&ignored)) {
  }
  (void)reader_->Finish();
}

grpc::Status HealthWatcher::finish() {
  finished_ = true;
  return reader_->Finish();
}

std::optional<std::string> HealthWatcher::next() {
  grpc::ByteBuffer response;
  if (!reader_->Read(&response)) return std::nullopt;
  return describeHealthResponse(response);
}

std::string rawEchoBackend(RawH2Client& client, const HeaderList& metadata) {
  RawRequest request = RawRequest::grpc("/sluice.example.Echo/Unary", grpcFrame(example::EchoRequest().SerializeAsString()));
  request.headers.insert(request.headers.end(), metadata.begin(), metadata.end());
  RawResponse response = client.request(request);
  INFO(response.describe());
  REQUIRE(response.grpcStatus() == 0);
  auto frames = parseGrpcFrames(response.body);
  REQUIRE(frames.has_value());
  REQUIRE(frames->size() == 1);
  example::EchoResponse echo;
  REQUIRE(echo.ParseFromString(frames->front()));
  return echo.backend();
}

}  // namespace sluice::test
