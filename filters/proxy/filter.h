// ProxyFilter: the terminal filter. Relays the call to an endpoint of the routed
// cluster over a pooled HTTP/2 connection, in both directions as messages
// arrive, and carries flow control across: a full upstream request buffer
// slows the client; a full downstream response buffer slows the backend.
//
// With a route retry policy, a failed attempt (connect failure, reset, a
// retriable status, a per-try timeout) is retried on another endpoint while
// nothing of the response has reached the client and the request so far fits
// the replay buffer, never past the call's deadline, and while the cluster's
// retry budget allows (circuit_breakers.retry_budget). A backend's
// grpc-retry-pushback-ms sets the wait before the retry, or forbids it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "codecs/grpc/frame_decoder.h"
#include "core/cluster_config.h"
#include "core/filter.h"
#include "core/stream_context.h"
#include "core/timer.h"
#include "upstream/endpoint.h"
#include "upstream/upstream_stream.h"

namespace sluice {
class Cluster;
class Endpoint;
struct RetryPolicy;
}  // namespace sluice

namespace sluice::filters::proxy {

class ProxyFilter final : public Filter,
                          public UpstreamCallbacks,
                          public WatermarkCallbacks,
                          public MessageSink {
 public:
  explicit ProxyFilter(StreamContext& ctx);
  ~ProxyFilter() override;

  FilterStatus onRequestHeaders(StreamContext& ctx) override;
  FilterStatus onRequestMessage(StreamContext& ctx, Message& message) override;
  FilterStatus onRequestEnd(StreamContext& ctx) override;
  void onStreamDone(StreamContext& ctx) override;
  size_t heldMessageBytes() const override;

  // ---- UpstreamCallbacks ----
  void onUpstreamHeaders(HeaderMap&& headers, bool end_stream) override;
  void onUpstreamData(const uint8_t* data, size_t len) override;
  void onUpstreamEnd(HeaderMap&& trailers) override;
  void onUpstreamReset(UpstreamReset reset) override;
  void onUpstreamWithdrawn(const std::string& detail, bool endpoint_fault) override;
  void onUpstreamRequestWatermark(bool above) override { ctx_.setRequestBackpressure(above); }
  // ---- WatermarkCallbacks (downstream response buffer) ----
  void onAboveWriteBufferHighWatermark() override { downstream_full_ = true; }
  void onBelowWriteBufferLowWatermark() override;
  // ---- MessageSink (response decoder) ----
  bool onMessage(Message&& message) override;

 private:
  void startAttempt();
  // The attempt's stream, withdrawn unsent, goes to an endpoint chosen now.
  void placeWithdrawn();
  // Picks the current attempt's endpoint (another than the last, if the
  // cluster has one) into endpoint_; false, with the attempt failed as
  // unsent, when there is none. With `failed_connect` (why the last
  // endpoint's connect failed), the last one does not count either.
  bool chooseEndpoint(const std::string* failed_connect = nullptr);
  static constexpr uint32_t kMaxWithdrawals = 4;  // per call: past it, as a refusal
  // How far a failed attempt got: a backend may have processed it; it never
  // left the gateway (no endpoint, a pool or connect failure before the
  // request was handed to a connection); or the backend refused it
  // unprocessed (REFUSED_STREAM).
  enum class Reach { Backend, Unsent, Refused };
  // The attempt is over without an answer for the client: retry or reply.
  void attemptFailed(StatusCode code, const std::string& detail, bool endpoint_fault, Reach reach = Reach::Backend);
  // Ends the call after its last attempt: refused (the client may retry)
  // when no backend processed any attempt, else `code` with `message`.
  void endWithFailure(StatusCode code, std::string_view message);
  bool canRetry(StatusCode code) const;
  // Starts the current attempt's per-try timeout (per_try_timeout_ms), once
  // the whole request is in: at the attempt's start when it already is.
  void armPerTryTimer();
  // gRFC A6 server pushback in a retriable reply: none (true), a delay the
  // call can wait out (true; the next attempt waits exactly that), or a
  // refusal or a delay past the deadline (false, and `why`).
  bool acceptsPushback(const HeaderMap& reply, std::string& why);
  static constexpr std::chrono::milliseconds kMaxPushback{60'000};
  // The cluster's retry budget (Cluster::admitRetry): false, with why, when
  // this call may not retry. Held from the first retry of an attempt that
  // reached a backend until the response begins or the call ends.
  bool holdRetryPlace(std::string& why);
  void releaseRetryPlace();
  void retireAttempt();
  HeaderBlock upstreamRequestHeaders() const;
  // No more replays: the kept request messages are freed.
  void dropReplay();
  // An attempt's result for outlier detection (Endpoint::recordCallResult):
  // once per attempt, when it ends, by its grpc-status or how it failed.
  void recordOutcome(bool success);
  // Tells ctx_ how many bytes the partial response message holds; false
  // (the call ended) when that takes the connection past its limit.
  bool countIncompleteResponse();
  void releaseIncompleteResponse();
  void failFromUpstream(StatusCode code, const std::string& detail);
  std::string describe(const std::string& detail) const;

  StreamContext& ctx_;
  Cluster* cluster_ = nullptr;
  const RetryPolicy* retry_ = nullptr;
  // The current (or last) attempt's, held: a DNS answer may remove it meanwhile.
  EndpointRef endpoint_;
  std::unique_ptr<UpstreamStream> upstream_;
  // Earlier attempts: freed with the filter, never inside their own callbacks.
  std::vector<std::unique_ptr<UpstreamStream>> retired_;
  uint32_t attempts_ = 0;
  // A vector: empty, it allocates nothing (a deque allocates two blocks per
  // call). dropReplay() frees it.
  std::vector<Message> replay_;
  size_t replay_bytes_ = 0;  // every request byte seen while replayable (goes on once the copy is dropped)
  size_t replay_held_ = 0;   // the bytes in replay_
  bool replayable_ = true;
  Status retry_reason_ = Status::ok();  // why the attempt being retried failed
  // The failed attempt's backend said when to retry (grpc-retry-pushback-ms):
  // the next attempt waits exactly that, and the jittered backoff starts over.
  std::optional<std::chrono::milliseconds> pushback_;
  uint32_t backoff_step_ = 0;  // jittered backoffs since the start or a pushback
  bool request_ended_ = false;
  bool response_started_ = false;
  bool response_encoded_ = false;  // the response's grpc-encoding is not identity: compressed messages are fine
  bool outcome_recorded_ = false;  // the call's result went to outlier detection
  // Every failed attempt so far was refused unprocessed (REFUSED_STREAM):
  // only then may the client be told the call was never processed.
  bool only_refusals_ = true;
  bool holds_retry_place_ = false;  // counted in the cluster's active_retries
  TimerPtr per_try_timer_;
  // When the current attempt's per-try timeout is due (per_try_timeout_ms);
  // the clock's end while it is not armed.
  StreamContext::Clock::time_point per_try_deadline_ = StreamContext::Clock::time_point::max();
  TimerPtr backoff_timer_;
  TimerPtr withdrawn_timer_;  // places a withdrawn stream after the event that withdrew it
  uint32_t withdrawals_ = 0;
  // Why the last withdrawal's endpoint failed its connect; empty when it
  // was withdrawn for another reason (it left its cluster).
  std::string failed_connect_;
  GrpcFrameDecoder response_decoder_;
  size_t withheld_credit_ = 0;  // response bytes not yet returned to the backend's window
  size_t incomplete_response_counted_ = 0;  // response_decoder_'s held bytes, as told to ctx_
  bool downstream_full_ = false;
  // The backend's receive window: each stream starts with the cluster's base
  // (ClusterConfig::baseStreamWindow); one that has sent a quarter of it
  // while its client keeps up is streaming, and gets the rest of
  // initial_stream_window_bytes as far as the client's connection lends it
  // (StreamContext::reserveResponseWindow; the call's until its stream closes).
  static constexpr size_t kWidenWindowAfter = ClusterConfig::kBaseStreamWindow / 4;
  void widenResponseWindow();
  size_t attempt_received_ = 0;  // response bytes of the current attempt
  size_t widen_at_ = kWidenWindowAfter;  // attempt_received_ at which to widen (again); SIZE_MAX: done
  size_t window_lent_ = 0;     // lent to the call so far
  size_t window_applied_ = 0;  // of it, given to the current attempt's stream
};

}  // namespace sluice::filters::proxy
