#include "examples/backend/echo_service.h"

#include <algorithm>
#include <thread>

namespace sluice::example {
namespace {

constexpr std::string_view kUnary = "/sluice.example.Echo/Unary";
constexpr std::string_view kClientStream = "/sluice.example.Echo/ClientStream";
constexpr std::string_view kServerStream = "/sluice.example.Echo/ServerStream";
constexpr std::string_view kBidi = "/sluice.example.Echo/Bidi";
constexpr std::string_view kOtherUnary = "/sluice.example.Other/Unary";

// ClientStream concatenates the payloads it receives into its answer; past
// this it only counts, so a long upload cannot exhaust the backend's memory.
constexpr size_t kMaxConcatenatedBytes = 64u << 20;

// Counts the call in and out, and notices a cancel that arrived while the
// handler ran even if the handler itself never looked.
class CallScope {
 public:
  CallScope(BackendStats& stats, grpc::ServerContext& context, std::string_view method)
      : stats_(stats), context_(context) {
    stats_.recordCall(context, method);
  }
  ~CallScope() {
    if (context_.IsCancelled() && !cancelCounted_) stats_.cancelled++;
    stats_.active--;
    stats_.completed++;
  }
  // Returns the status a handler gives back for a call the client abandoned.
  grpc::Status cancelled() {
    if (!cancelCounted_) {
      cancelCounted_ = true;
      stats_.cancelled++;
    }
    return {grpc::StatusCode::CANCELLED, "cancelled"};
  }

 private:
  BackendStats& stats_;
  grpc::ServerContext& context_;
  bool cancelCounted_ = false;
};

// Sleeps in small steps so a cancel (client cancel, deadline, reset) is seen
// promptly; false when the call was cancelled.
bool sleepUnlessCancelled(grpc::ServerContext& context, uint32_t ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (context.IsCancelled()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return !context.IsCancelled();
}

// Must run before the first message is written: initial metadata goes out
// with it.
// The per-call options of the first request that shape the response stream:
// metadata echo and compression.
void applyMetadataEcho(grpc::ServerContext& context, const EchoRequest& request) {
  if (request.compress_response()) context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  for (const auto& [key, value] : request.response_trailers()) context.AddTrailingMetadata(key, value);
  if (!request.echo_metadata()) return;
  for (const auto& [key, value] : context.client_metadata()) {
    std::string_view name(key.data(), key.size());
    if (name.starts_with("x-")) context.AddInitialMetadata(std::string(name), std::string(value.data(), value.size()));
  }
  context.AddTrailingMetadata("x-trailer", "trailer-value");
  context.AddTrailingMetadata("x-trailer-bin", std::string("\x00\xff\x10", 3));
}

void fillRequestMetadata(grpc::ServerContext& context, EchoResponse& response) {
  auto& out = *response.mutable_request_metadata();
  for (const auto& [key, value] : context.client_metadata()) {
    std::string name(key.data(), key.size());
    std::string text(value.data(), value.size());
    auto [it, inserted] = out.try_emplace(name, text);
    if (!inserted) it->second += "," + text;
  }
}

grpc::Status finalStatus(const EchoRequest& request) {
  if (request.status_code() == 0) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(request.status_code()), request.status_message()};
}

// Streaming calls send response_count responses; 0 means one for a call that
// succeeds and none for one that fails, so a failing call can be trailers-only.
uint32_t responseCount(const EchoRequest& request) {
  if (request.response_count() > 0) return request.response_count();
  return request.status_code() == 0 ? 1 : 0;
}

std::string responsePayload(const EchoRequest& request) {
  return request.response_size() > 0 ? makePattern(request.response_size()) : request.payload();
}

}  // namespace

std::string makePattern(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = patternByte(i);
  return data;
}

bool checkPattern(std::string_view data) {
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] != patternByte(i)) return false;
  }
  return true;
}

Metadata BackendStats::lastMetadata() const {
  std::lock_guard lock(mutex_);
  return lastMetadata_;
}

std::string BackendStats::lastMethod() const {
  std::lock_guard lock(mutex_);
  return lastMethod_;
}

bool BackendStats::waitUntil(const std::function<bool()>& condition,
                             std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= until) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void BackendStats::recordCall(const grpc::ServerContext& context, std::string_view method) {
  Metadata metadata;
  for (const auto& [key, value] : context.client_metadata()) {
    metadata.emplace(std::string(key.data(), key.size()), std::string(value.data(), value.size()));
  }
  {
    std::lock_guard lock(mutex_);
    lastMetadata_ = std::move(metadata);
    lastMethod_ = std::string(method);
  }
  active++;
  calls++;
}

grpc::Status EchoBackend::unary(grpc::ServerContext& context, const EchoRequest& request,
                                EchoResponse& response, std::string_view method) {
  CallScope scope(stats_, context, method);
  stats_.messagesReceived++;
  if (!sleepUnlessCancelled(context, request.sleep_ms())) return scope.cancelled();
  applyMetadataEcho(context, request);
  // Returning an error without a message makes grpc++ send a trailers-only
  // response, which is what the tests want to see relayed.
  const bool fails_here = request.fail_only_on().empty() || request.fail_only_on() == name_;
  if (request.status_code() != 0 && fails_here) return finalStatus(request);
  response.set_payload(responsePayload(request));
  response.set_backend(name_);
  response.set_index(0);
  response.set_method(std::string(method));
  if (request.echo_metadata()) fillRequestMetadata(context, response);
  stats_.messagesSent++;
  return grpc::Status::OK;
}

grpc::Status EchoServiceImpl::Unary(grpc::ServerContext* context, const EchoRequest* request,
                                    EchoResponse* response) {
  return backend_.unary(*context, *request, *response, kUnary);
}

grpc::Status OtherServiceImpl::Unary(grpc::ServerContext* context, const EchoRequest* request,
                                     EchoResponse* response) {
  return backend_.unary(*context, *request, *response, kOtherUnary);
}

grpc::Status EchoServiceImpl::ClientStream(grpc::ServerContext* context,
                                           grpc::ServerReader<EchoRequest>* reader,
                                           EchoResponse* response) {
  BackendStats& stats = backend_.stats();
  CallScope scope(stats, *context, kClientStream);
  // The first request's options govern the call; later ones only carry payload.
  EchoRequest first;
  EchoRequest request;
  uint64_t messages = 0;
  uint64_t bytes = 0;
  std::string concatenated;
  while (reader->Read(&request)) {
    if (messages == 0) first = request;
    ++messages;
    bytes += request.payload().size();
    stats.messagesReceived++;
    if (concatenated.size() + request.payload().size() <= kMaxConcatenatedBytes) {
      concatenated += request.payload();
    }
  }
  if (context->IsCancelled()) return scope.cancelled();
  if (!sleepUnlessCancelled(*context, first.sleep_ms())) return scope.cancelled();
  applyMetadataEcho(*context, first);
  if (first.status_code() != 0) return finalStatus(first);
  response->set_payload(first.response_size() > 0 ? makePattern(first.response_size())
                                                   : std::move(concatenated));
  response->set_backend(backend_.name());
  response->set_received_messages(messages);
  response->set_received_bytes(bytes);
  response->set_method(std::string(kClientStream));
  if (first.echo_metadata()) fillRequestMetadata(*context, *response);
  stats.messagesSent++;
  return grpc::Status::OK;
}

grpc::Status EchoServiceImpl::ServerStream(grpc::ServerContext* context, const EchoRequest* request,
                                           grpc::ServerWriter<EchoResponse>* writer) {
  BackendStats& stats = backend_.stats();
  CallScope scope(stats, *context, kServerStream);
  stats.messagesReceived++;
  if (!sleepUnlessCancelled(*context, request->sleep_ms())) return scope.cancelled();
  applyMetadataEcho(*context, *request);
  EchoResponse response;
  response.set_payload(responsePayload(*request));
  response.set_backend(backend_.name());
  response.set_method(std::string(kServerStream));
  if (request->echo_metadata()) fillRequestMetadata(*context, response);
  const uint32_t count = responseCount(*request);
  for (uint32_t i = 0; i < count; ++i) {
    if (i > 0 && !sleepUnlessCancelled(*context, request->response_interval_ms())) {
      return scope.cancelled();
    }
    response.set_index(i);
    if (!writer->Write(response)) return scope.cancelled();
    stats.messagesSent++;
  }
  return finalStatus(*request);
}

grpc::Status EchoServiceImpl::Bidi(grpc::ServerContext* context,
                                   grpc::ServerReaderWriter<EchoResponse, EchoRequest>* stream) {
  BackendStats& stats = backend_.stats();
  CallScope scope(stats, *context, kBidi);
  EchoRequest request;
  uint64_t index = 0;
  bool first = true;
  // Answers each request in turn. The loop only reads again after answering,
  // so when the client half-closes early the backend is still writing: the
  // half-close test depends on exactly that.
  while (stream->Read(&request)) {
    stats.messagesReceived++;
    if (first) applyMetadataEcho(*context, request);
    if (!sleepUnlessCancelled(*context, request.sleep_ms())) return scope.cancelled();
    EchoResponse response;
    response.set_payload(responsePayload(request));
    response.set_backend(backend_.name());
    response.set_method(std::string(kBidi));
    if (first && request.echo_metadata()) fillRequestMetadata(*context, response);
    first = false;
    const uint32_t count = responseCount(request);
    for (uint32_t i = 0; i < count; ++i) {
      if (i > 0 && !sleepUnlessCancelled(*context, request.response_interval_ms())) {
        return scope.cancelled();
      }
      response.set_index(index++);
      if (!stream->Write(response)) return scope.cancelled();
      stats.messagesSent++;
    }
    if (request.status_code() != 0) return finalStatus(request);
  }
  if (context->IsCancelled()) return scope.cancelled();
  return grpc::Status::OK;
}

void EchoBackend::addTo(grpc::ServerBuilder& builder) {
  builder.RegisterService(&echo_);
  builder.RegisterService(&other_);
  builder.SetMaxReceiveMessageSize(-1);
  builder.SetMaxSendMessageSize(-1);
}

}  // namespace sluice::example
