// sluice_example_client: one call of each interesting kind through a gateway
// (or straight to a backend), printed so a person can follow the demo.
//
//   sluice_example_client --target 127.0.0.1:8080 --name alice [--count 3]
//
// Exits 0 when every call succeeded, 1 with the failing status otherwise.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "examples/backend/echo_service.h"

namespace {

using sluice::example::Echo;
using sluice::example::EchoRequest;
using sluice::example::EchoResponse;

constexpr auto kCallTimeout = std::chrono::seconds(10);

void usage() {
  std::cerr << "usage: sluice_example_client [--target HOST:PORT] [--name NAME] [--count N]\n";
}

void prepare(grpc::ClientContext& context, const std::string& name) {
  context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  context.AddMetadata("x-client", name);
}

std::string describe(const EchoResponse& response) {
  return "#" + std::to_string(response.index()) + " from backend \"" + response.backend() +
         "\": \"" + response.payload() + "\"";
}

std::string metadataValue(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                          const std::string& key) {
  auto it = metadata.find(key);
  return it == metadata.end() ? "(none)" : std::string(it->second.data(), it->second.size());
}

const char* codeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",      "CANCELLED",    "UNKNOWN",      "INVALID_ARGUMENT",  "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
      "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  int index = static_cast<int>(code);
  return index >= 0 && index <= 16 ? kNames[index] : "UNKNOWN";
}

bool failed(const char* what, const grpc::Status& status) {
  if (status.ok()) return false;
  std::cerr << what << " failed: " << codeName(status.error_code()) << " ("
            << static_cast<int>(status.error_code()) << "): " << status.error_message() << "\n";
  return true;
}

bool runUnary(Echo::Stub& stub, const std::string& name) {
  grpc::ClientContext context;
  prepare(context, name);
  EchoRequest request;
  request.set_payload("hello from " + name);
  request.set_echo_metadata(true);
  EchoResponse response;
  grpc::Status status = stub.Unary(&context, request, &response);
  if (failed("unary", status)) return false;
  std::cout << "unary:         " << describe(response) << "\n"
            << "               header x-client=" << metadataValue(context.GetServerInitialMetadata(), "x-client")
            << ", trailer x-trailer=" << metadataValue(context.GetServerTrailingMetadata(), "x-trailer")
            << "\n";
  return true;
}

bool runServerStream(Echo::Stub& stub, const std::string& name, int count) {
  grpc::ClientContext context;
  prepare(context, name);
  EchoRequest request;
  request.set_payload("tick for " + name);
  request.set_response_count(count);
  request.set_response_interval_ms(100);
  auto reader = stub.ServerStream(&context, request);
  EchoResponse response;
  while (reader->Read(&response)) std::cout << "server stream: " << describe(response) << "\n";
  return !failed("server stream", reader->Finish());
}

bool runBidi(Echo::Stub& stub, const std::string& name, int count) {
  grpc::ClientContext context;
  prepare(context, name);
  auto stream = stub.Bidi(&context);
  // Ping-pong: each request is answered before the next is sent, which shows
  // both directions of one stream crossing the gateway.
  for (int i = 0; i < count; ++i) {
    EchoRequest request;
    request.set_payload(name + " says " + std::to_string(i));
    if (!stream->Write(request)) break;
    EchoResponse response;
    if (!stream->Read(&response)) break;
    std::cout << "bidi:          sent \"" << request.payload() << "\", got " << describe(response)
              << "\n";
  }
  stream->WritesDone();
  return !failed("bidi", stream->Finish());
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:8080";
  std::string name = "client";
  int count = 3;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--target" && i + 1 < argc) {
      target = argv[++i];
    } else if (arg == "--name" && i + 1 < argc) {
      name = argv[++i];
    } else if (arg == "--count" && i + 1 < argc) {
      count = std::atoi(argv[++i]);
    } else if (arg == "--help" || arg == "-h") {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (count < 1) count = 1;

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = Echo::NewStub(channel);
  if (!runUnary(*stub, name) || !runServerStream(*stub, name, count) ||
      !runBidi(*stub, name, count)) {
    return 1;
  }
  std::cout << "all calls OK\n";
  return 0;
}
