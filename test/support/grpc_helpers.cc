#include "test/support/grpc_helpers.h"

#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>

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

grpc::Status checkHealth(grpc::Channel& channel, const std::string& service, std::string* serving) {
  grpc::ClientContext context;
  setTimeout(context, std::chrono::seconds(5));
  std::string request;
  if (!service.empty()) {  // field 1, length-delimited (names here are under 128 bytes)
    request += '\x0a';
    request += static_cast<char>(service.size());
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check", grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      &channel, method, &context, request_buffer, &response_buffer);
  serving->clear();
  if (!status.ok()) return status;
  std::vector<grpc::Slice> slices;
  (void)response_buffer.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes == std::string("\x08\x01", 2)) {
    *serving = "SERVING";
  } else if (bytes == std::string("\x08\x02", 2)) {
    *serving = "NOT_SERVING";
  } else {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char c : bytes) {
      *serving += kHex[c >> 4];
      *serving += kHex[c & 15];
    }
  }
  return status;
}

}  // namespace sluice::test
