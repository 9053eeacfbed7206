// The example backend: sluice.example.Echo and sluice.example.Other on the
// grpc++ sync API.
//
// One EchoBackend owns the backend's name and its BackendStats; the two service
// objects it hands out refer to it, so it must outlive the grpc::Server they are
// registered on. Handlers run on grpc++'s thread pool, any number at a time;
// everything in BackendStats is safe to read from other threads while calls run.
//
// What a call does is chosen by its EchoRequest (see echo.proto): the tests use
// this to make the backend slow, failing, chatty or a metadata mirror.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"

namespace sluice::example {

// Byte i of a generated payload. Position-dependent so a reader notices
// reordered, duplicated or truncated data without keeping a copy.
inline char patternByte(uint64_t i) { return static_cast<char>((i * 31 + 7) & 0xff); }
std::string makePattern(size_t size);
bool checkPattern(std::string_view data);

using Metadata = std::multimap<std::string, std::string>;

// What reached the backend. Counters only grow, so a test reads them before
// and after the part it cares about, or waits for one to reach a value.
class BackendStats {
 public:
  std::atomic<int> calls{0};      // handlers entered
  std::atomic<int> completed{0};  // handlers returned
  std::atomic<int> cancelled{0};  // calls on which the handler saw IsCancelled()
  std::atomic<int> active{0};     // handlers running now
  std::atomic<uint64_t> messagesReceived{0};
  std::atomic<uint64_t> messagesSent{0};

  // The request metadata and method of the most recently started call.
  Metadata lastMetadata() const;
  std::string lastMethod() const;

  // Polls `condition` until it holds or `timeout` passes; returns the last result.
  static bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

  void recordCall(const grpc::ServerContext& context, std::string_view method);

 private:
  mutable std::mutex mutex_;
  Metadata lastMetadata_;
  std::string lastMethod_;
};

class EchoBackend;

class EchoServiceImpl final : public Echo::Service {
 public:
  explicit EchoServiceImpl(EchoBackend& backend) : backend_(backend) {}

  grpc::Status Unary(grpc::ServerContext* context, const EchoRequest* request,
                     EchoResponse* response) override;
  grpc::Status ClientStream(grpc::ServerContext* context, grpc::ServerReader<EchoRequest>* reader,
                            EchoResponse* response) override;
  grpc::Status ServerStream(grpc::ServerContext* context, const EchoRequest* request,
                            grpc::ServerWriter<EchoResponse>* writer) override;
  grpc::Status Bidi(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<EchoResponse, EchoRequest>* stream) override;

 private:
  EchoBackend& backend_;
};

class OtherServiceImpl final : public Other::Service {
 public:
  explicit OtherServiceImpl(EchoBackend& backend) : backend_(backend) {}

  grpc::Status Unary(grpc::ServerContext* context, const EchoRequest* request,
                     EchoResponse* response) override;

 private:
  EchoBackend& backend_;
};

class EchoBackend {
 public:
  explicit EchoBackend(std::string name) : name_(std::move(name)) {}
  EchoBackend(const EchoBackend&) = delete;
  EchoBackend& operator=(const EchoBackend&) = delete;

  const std::string& name() const { return name_; }
  BackendStats& stats() { return stats_; }

  // Register both on a ServerBuilder; they stay owned by this object.
  EchoServiceImpl& echoService() { return echo_; }
  OtherServiceImpl& otherService() { return other_; }
  // Registers both services on `builder`, with no message size limit either way.
  void addTo(grpc::ServerBuilder& builder);

  // Shared by both services: Unary's behaviour for `method`.
  grpc::Status unary(grpc::ServerContext& context, const EchoRequest& request,
                     EchoResponse& response, std::string_view method);

 private:
  std::string name_;
  BackendStats stats_;
  EchoServiceImpl echo_{*this};
  OtherServiceImpl other_{*this};
};

}  // namespace sluice::example
