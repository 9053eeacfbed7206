// FakeContext: the StreamContext of filter unit tests. A test builds one per
// call, drives a filter's hooks with it and inspects what the filter did: the
// metadata it edited, the local reply it sent (status, message, trailers).
// With `chain` set, continue and encode calls drive that FilterChain as the
// real stream does. The path must look like "/pkg.Svc/Method"; service() and
// method() view into it, so a context is neither copied nor moved.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/filter_chain.h"
#include "core/stats.h"
#include "core/stream_context.h"

namespace sluice::test {

class FakeContext : public StreamContext {
 public:
  explicit FakeContext(std::string path = "/pkg.Svc/Method") {
    path_ = std::move(path);
    auto slash = path_.find('/', 1);
    service_ = std::string_view(path_).substr(1, slash - 1);
    method_ = std::string_view(path_).substr(slash + 1);
    peer_address_ = "127.0.0.1:5555";
  }
  FakeContext(const FakeContext&) = delete;
  FakeContext& operator=(const FakeContext&) = delete;

  Dispatcher& dispatcher() override { throw std::logic_error("FakeContext has no dispatcher"); }
  WorkerContext& worker() override { throw std::logic_error("FakeContext has no worker"); }
  CallHandle handle() override { return {}; }
  bool adjustIncompleteResponseBytes(int64_t delta) override {
    incomplete_response_bytes += delta;
    return true;
  }
  int64_t incomplete_response_bytes = 0;
  void resumeRequest(const Filter* from) override {
    if (chain != nullptr) chain->continueRequest(from);
  }
  void resumeResponse(const Filter* from) override {
    if (chain != nullptr) chain->continueResponse(from);
  }
  using StreamContext::sendLocalReply;
  void sendLocalReply(StatusCode code, std::string_view message, HeaderMap extra_trailers) override {
    ended_ = true;
    finish(code, std::string(message));
    local_reply_trailers = std::move(extra_trailers);
  }
  void sendLocalReply(LocalReplyReason reason, StatusCode code, std::string_view message) override {
    local_reply_reason = reason;
    sendLocalReply(code, message, HeaderMap{});
  }
  void refuseCall(std::string_view message) override {
    refused = true;
    sendLocalReply(StatusCode::Unavailable, message, HeaderMap{});
  }
  bool ended() const override { return ended_; }
  bool requestHeadersFiltered() const override {
    return chain != nullptr ? chain->requestHeadersAtTerminal() : headers_filtered;
  }
  void encodeResponseHeaders() override {
    if (chain != nullptr) chain->responseHeaders();
  }
  void encodeResponseMessage(Message&& m) override {
    if (chain != nullptr) chain->responseMessage(std::move(m));
  }
  void encodeResponseTrailers() override {
    if (chain != nullptr) chain->responseTrailers();
  }
  void setRequestBackpressure(bool) override {}
  size_t* heldRequestBytes() override { return &held_request_bytes; }
  void setWatermarkCallbacks(WatermarkCallbacks*) override {}

  bool refused = false;  // refuseCall() was used
  bool headers_filtered = true;  // requestHeadersFiltered() without a chain
  size_t held_request_bytes = 0;
  std::optional<LocalReplyReason> local_reply_reason;  // the reason the last local reply gave, if any
  // What the downstream stream would have set.
  void setPeerAddress(std::string peer) { peer_address_ = std::move(peer); }
  void setIds(uint64_t connection, int32_t stream) {
    connection_id_ = connection;
    stream_id_ = stream;
  }
  void setStart(Clock::time_point monotonic, std::chrono::system_clock::time_point wall) {
    start_time_ = monotonic;
    start_system_time_ = wall;
  }
  // The call's final status, as trailers from the backend would set it.
  void finish(StatusCode code, std::string message) {
    status_ = code;
    status_message_ = std::move(message);
  }

  FilterChain* chain = nullptr;
  HeaderMap local_reply_trailers;  // the extra trailers of the last local reply

 private:
  bool ended_ = false;
};

}  // namespace sluice::test
