// sluice_bench_backend: a lean sluice.example.Echo server for the benchmark.
//
// Same API and request semantics as examples/backend (payload echo,
// response_count, response_size; see examples/backend/echo.proto) but on the
// grpc++ callback API: no thread per call, no per-call bookkeeping, so that
// (a) the backend is as cheap as a grpc++ server gets and the gateways in
// front of it, not the backend, are what the benchmark tells apart, and
// (b) 10,000 idle bidi streams (and the 10,000 upstream connections nginx
// opens for them) cost no threads.
//
// Bidi sends its initial metadata as soon as the call starts, so a client
// knows a stream reached the backend before it sends anything: the idle
// streams measurement relies on that.
//
//   sluice_bench_backend --address 127.0.0.1:0 --port-file PATH
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"
#include "steady_malloc.h"

namespace {

using sluice::example::Echo;
using sluice::example::EchoRequest;
using sluice::example::EchoResponse;

// Same bytes as examples/backend's makePattern().
std::string makePattern(size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 31 + 7) & 0xff);
  return data;
}

// The payload an answer to `request` carries.
void fillPayload(const EchoRequest& request, EchoResponse& response) {
  if (request.response_size() > 0) {
    if (response.payload().size() != request.response_size()) {
      response.set_payload(makePattern(request.response_size()));
    }
  } else {
    response.set_payload(request.payload());
  }
}

grpc::Status finalStatus(const EchoRequest& request) {
  if (request.status_code() == 0) return grpc::Status::OK;
  return {static_cast<grpc::StatusCode>(request.status_code()), request.status_message()};
}

class ServerStreamReactor final : public grpc::ServerWriteReactor<EchoResponse> {
 public:
  explicit ServerStreamReactor(const EchoRequest& request)
      : status_(finalStatus(request)),
        remaining_(request.response_count() > 0 ? request.response_count()
                                                 : (request.status_code() == 0 ? 1 : 0)) {
    fillPayload(request, response_);
    next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    next();
  }
  void OnDone() override { delete this; }

 private:
  void next() {
    if (remaining_ == 0) {
      Finish(status_);
      return;
    }
    --remaining_;
    response_.set_index(index_++);
    StartWrite(&response_);
  }
  grpc::Status status_;
  EchoResponse response_;
  uint32_t remaining_;
  uint64_t index_ = 0;
};

// Reads and writes overlap: a read is outstanding while answers are written,
// up to kMaxQueued answers waiting.
class BidiReactor final : public grpc::ServerBidiReactor<EchoRequest, EchoResponse> {
 public:
  BidiReactor() {
    StartSendInitialMetadata();
    reading_ = true;
    StartRead(&request_);
  }
  void OnSendInitialMetadataDone(bool ok) override {}
  void OnReadDone(bool ok) override {
    std::lock_guard lock(mutex_);
    reading_ = false;
    if (!ok) {
      readsDone_ = true;
      maybeFinish();
      return;
    }
    const uint32_t count = request_.response_count() > 0 ? request_.response_count() : 1;
    for (uint32_t i = 0; i < count; ++i) {
      EchoResponse& response = queue_.emplace_back();
      fillPayload(request_, response);
      response.set_index(index_++);
    }
    if (request_.status_code() != 0) {
      // Answer what was asked, then end with the requested status.
      status_ = finalStatus(request_);
      readsDone_ = true;
    }
    if (!writing_) writeFront();
    if (!readsDone_ && queue_.size() < kMaxQueued) {
      reading_ = true;
      StartRead(&request_);
    }
    maybeFinish();
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mutex_);
    writing_ = false;
    queue_.pop_front();
    if (!ok) {
      failed_ = true;
      queue_.clear();
      readsDone_ = true;
    }
    if (!queue_.empty()) writeFront();
    if (!readsDone_ && !reading_ && queue_.size() < kMaxQueued) {
      reading_ = true;
      StartRead(&request_);
    }
    maybeFinish();
  }
  void OnDone() override { delete this; }

 private:
  static constexpr size_t kMaxQueued = 8;
  void writeFront() {
    writing_ = true;
    StartWrite(&queue_.front());
  }
  void maybeFinish() {
    if (finished_ || !readsDone_ || writing_ || reading_ || !queue_.empty()) return;
    finished_ = true;
    Finish(failed_ ? grpc::Status(grpc::StatusCode::CANCELLED, "write failed") : status_);
  }
  std::mutex mutex_;
  EchoRequest request_;
  std::deque<EchoResponse> queue_;
  grpc::Status status_;
  uint64_t index_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool readsDone_ = false;
  bool failed_ = false;
  bool finished_ = false;
};

class EchoService final : public Echo::CallbackService {
 public:
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, const EchoRequest* request,
                                  EchoResponse* response) override {
    auto* reactor = context->DefaultReactor();
    if (request->status_code() != 0) {
      reactor->Finish(finalStatus(*request));
      return reactor;
    }
    fillPayload(*request, *response);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerWriteReactor<EchoResponse>* ServerStream(grpc::CallbackServerContext* context,
                                                       const EchoRequest* request) override {
    return new ServerStreamReactor(*request);
  }
  grpc::ServerBidiReactor<EchoRequest, EchoResponse>* Bidi(
      grpc::CallbackServerContext* context) override {
    return new BidiReactor();
  }
};

}  // namespace

int main(int argc, char** argv) {
  sluice::bench::keepFreedMemory();
  std::string address = "127.0.0.1:0";
  std::string portFile;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--address" && i + 1 < argc) {
      address = argv[++i];
    } else if (arg == "--port-file" && i + 1 < argc) {
      portFile = argv[++i];
    } else {
      std::cerr << "usage: sluice_bench_backend [--address HOST:PORT] [--port-file PATH]\n";
      return 2;
    }
  }
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);

  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(-1);
  builder.SetMaxSendMessageSize(-1);
  // Many idle streams per connection (sluice, HAProxy multiplex upstream).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 100000);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "bench backend: cannot listen on " << address << "\n";
    return 1;
  }
  if (!portFile.empty()) {
    std::ofstream(portFile + ".tmp") << port << "\n";
    std::rename((portFile + ".tmp").c_str(), portFile.c_str());
  }
  std::cout << "bench backend listening on port " << port << std::endl;
  int signal = 0;
  sigwait(&stopSignals, &signal);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  return 0;
}
