// StreamContext: everything about one gRPC call that filters read and act on.
//
// Owned by the downstream stream (listeners/) for the call's whole life; the
// filters of that stream get it by reference in every hook. Data members are
// plain state; the virtual methods are the actions a filter can take, which the
// stream implements (and a test can fake).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/call_handle.h"
#include "core/timer.h"
#include "core/headers.h"
#include "core/message.h"
#include "core/status.h"

namespace sluice {

class Dispatcher;
class Filter;
class WorkerContext;
struct Route;
enum class LocalReplyReason;  // core/stats.h

// Told when the downstream response buffer fills and drains, so the terminal
// filter can stop and resume acknowledging upstream bytes.
class WatermarkCallbacks {
 public:
  virtual ~WatermarkCallbacks() = default;
  virtual void onAboveWriteBufferHighWatermark() = 0;
  virtual void onBelowWriteBufferLowWatermark() = 0;
};

// Per-call state one filter leaves in the context, under a key, for other
// filters of the same call: e.g. an auth filter's verified identity for a
// logger. Subclass it. The context owns the object until the context itself
// is destroyed, after every filter's onStreamDone. (State a filter only reads
// itself belongs in its own members: there is one filter object per call.)
class FilterState {
 public:
  virtual ~FilterState() = default;
};
using FilterStatePtr = std::unique_ptr<FilterState>;

struct StreamCounters {
  uint64_t request_messages = 0;
  uint64_t request_bytes = 0;
  uint64_t response_messages = 0;
  uint64_t response_bytes = 0;
};

class StreamContext {
 public:
  using Clock = std::chrono::steady_clock;

  virtual ~StreamContext() = default;

  // ---- the call ----
  const std::string& path() const { return path_; }        // "/pkg.Service/Method"
  std::string_view service() const { return service_; }    // "pkg.Service"
  std::string_view method() const { return method_; }      // "Method"
  HeaderMap& requestHeaders() { return request_headers_; }  // pseudo-headers included
  HeaderMap& responseHeaders() { return response_headers_; }
  HeaderMap& responseTrailers() { return response_trailers_; }
  const std::string& peerAddress() const { return peer_address_; }
  uint64_t connectionId() const { return connection_id_; }
  int32_t streamId() const { return stream_id_; }
  StreamCounters& counters() { return counters_; }
  // The call's x-request-id (core/request_id.h): the client's, or one the
  // gateway made (the listener's generate_request_id); empty when it has none.
  const std::string& requestId() const { return request_id_; }
  // When the call started: monotonic, for durations and deadlines...
  Clock::time_point startTime() const { return start_time_; }
  // ...and on the wall clock, for logs.
  std::chrono::system_clock::time_point startSystemTime() const { return start_system_time_; }
  // The listener's limit on one message, applied both ways.
  uint32_t maxMessageBytes() const { return max_message_bytes_; }

  // The call's deadline (from grpc-timeout); filters may shorten it.
  std::optional<Clock::time_point> deadline() const { return deadline_; }
  virtual void setDeadline(Clock::time_point deadline) { deadline_ = deadline; }

  // Set by the router, read by the proxy.
  const Route* route() const { return route_; }
  void setRoute(const Route* route) { route_ = route; }
  // Set by the proxy: the endpoint that served the call ("IP:port"), and how
  // many attempts it took (1 without retries).
  const std::string& upstreamAddress() const { return upstream_address_; }
  void setUpstreamAddress(std::string address) { upstream_address_ = std::move(address); }
  uint32_t upstreamAttempts() const { return upstream_attempts_; }
  void setUpstreamAttempts(uint32_t attempts) { upstream_attempts_ = attempts; }

  // Typed per-call filter state: the object stored under `key` if there is one
  // and it is a T, else nullptr. Keys are prefixed with the filter's name by
  // convention ("auth.identity").
  template <class T>
  T* filterState(std::string_view key) {
    static_assert(std::is_base_of_v<FilterState, T>, "filter state types derive from FilterState");
    auto it = filter_state_.find(key);
    return it == filter_state_.end() ? nullptr : dynamic_cast<T*>(it->second.get());
  }
  // Stores `state` under `key`, replacing (destroying) what was there; a null
  // `state` removes the key.
  void setFilterState(std::string key, FilterStatePtr state) {
    if (state == nullptr) {
      filter_state_.erase(key);
    } else {
      filter_state_.insert_or_assign(std::move(key), std::move(state));
    }
  }

  // The final status, known once trailers arrived or a local reply was sent.
  StatusCode status() const { return status_; }
  const std::string& statusMessage() const { return status_message_; }
  // The response's HTTP :status: 200 for every gRPC reply; 405 or 415 when the
  // gateway refused a request that was not gRPC at all.
  int httpStatus() const { return http_status_; }

  // ---- actions ----
  virtual Dispatcher& dispatcher() = 0;
  virtual WorkerContext& worker() = 0;
  // The way back to this call from a thread of the filter's own: work posted
  // through it runs on this call's worker only if the call is still going
  // (core/call_handle.h). Once the call has ended, an empty handle.
  virtual CallHandle handle() = 0;
  // A timer on this call's loop, for the filter to own (a pause with a
  // fail-open wait, a delayed reply). Its callback runs as CallHandle work
  // does: not at all once the call has ended, and one that throws is logged
  // and ends the call with INTERNAL (filter_error) instead of leaving it
  // paused until its deadline. A plain Timer on dispatcher() knows no call.
  // The filter keeps what this returns: destroying it cancels the timer
  // (`ctx.timer(f)->enable(...)` would leave the call paused for good).
  [[nodiscard]] TimerPtr timer(std::function<void()> on_fire);

  // Resume a chain paused by StopIteration, from the filter after the one
  // that paused. Pass the filter itself (continueRequest(*this)): then it
  // resumes only if that filter is the one holding the chain, so a second or
  // late call from it (a result and a fail-open timer both firing) cannot
  // release a later filter's pause, such as an auth check still waiting.
  // (A filter that pauses again is itself the one holding the chain: a
  // stale resume of its own earlier pause is its to cancel, with the timer
  // or request it came from.)
  // Without it, whichever filter paused is resumed. May end the call before
  // it returns (a later filter refusing it): every onStreamDone has run then.
  void continueRequest(const Filter& self) { resumeRequest(&self); }
  void continueResponse(const Filter& self) { resumeResponse(&self); }
  void continueRequest() { resumeRequest(nullptr); }
  void continueResponse() { resumeResponse(nullptr); }
  // End the call with a gRPC status (trailers-only if nothing was sent yet).
  // The request is abandoned; filters get onStreamDone.
  void sendLocalReply(StatusCode code, std::string_view message) { sendLocalReply(code, message, HeaderMap{}); }
  // The same, with extra trailing metadata (e.g. a retry hint).
  virtual void sendLocalReply(StatusCode code, std::string_view message, HeaderMap extra_trailers) = 0;
  // The same, saying why for the gateway's local-reply counters. Without a
  // reason it follows the code: UNIMPLEMENTED no_route, UNAVAILABLE
  // upstream_failure, DEADLINE_EXCEEDED deadline, any other filter. A
  // terminal filter passing on a backend's failure (a reset mapped to
  // INTERNAL or CANCELLED, a response over the limit) says so here.
  virtual void sendLocalReply(LocalReplyReason reason, StatusCode code, std::string_view message) = 0;
  // True once the call has ended (local reply, reset or complete).
  virtual bool ended() const = 0;
  // True once the request headers went through every filter before the
  // terminal one, none refusing the call: their metadata is what the filters
  // (auth stripping identity keys, metadata replacing x-forwarded-for...)
  // made of it. Until then, or for a call refused on the way, it may be as
  // the client sent it.
  virtual bool requestHeadersFiltered() const = 0;

  // ---- what the stream implements ----
  // continueRequest()/continueResponse(): `from` is the filter resuming, or
  // nullptr for whichever one paused.
  virtual void resumeRequest(const Filter* from) = 0;
  virtual void resumeResponse(const Filter* from) = 0;
  // Work of the filter named `filter` just ran for this call outside its
  // hooks (a timer(), a CallHandle's post or run): header fields it changed
  // there are checked now, as its doing (not as the next hook's).
  virtual void filterWorkDone(std::string_view filter) {}

  // ---- for the terminal filter (the one that produces the response) ----
  // The backend refused the call unprocessed (RST_STREAM REFUSED_STREAM):
  // end it the same way toward the client, whose gRPC library then retries
  // it once by itself (gRFC A6, transparent retry). Once response headers
  // went out, the same as sendLocalReply(UNAVAILABLE, message).
  virtual void refuseCall(std::string_view message) = 0;
  // Send responseHeaders() through the response hooks to the client.
  virtual void encodeResponseHeaders() = 0;
  virtual void encodeResponseMessage(Message&& message) = 0;
  // Send responseTrailers() (with grpc-status). Without headers first, the
  // reply is trailers-only.
  virtual void encodeResponseTrailers() = 0;
  // Where the terminal counts the request bytes it holds for its backend
  // (queued, not yet written): the connection's total of request bytes held,
  // which max_incomplete_request_bytes caps. Stop counting by onStreamDone.
  virtual size_t* heldRequestBytes() = 0;
  // The terminal's response messages still arriving (reassembled whole
  // before they go on) changed by `delta` bytes; counted per connection. False
  // when that takes the connection past max_incomplete_response_bytes: end
  // the call. Count back to 0 by onStreamDone.
  virtual bool adjustIncompleteResponseBytes(int64_t delta) = 0;
  // Receive window a terminal may grant its backend for this call beyond a
  // small base (the proxy: past the cluster's first 256 KiB): up to `wanted`
  // more bytes of what the connection's max_buffered_response_bytes has not
  // lent to its other calls, since each window's worth may end up queued
  // for a client that reads slowly. The loan is the call's until its stream
  // closes (its response has gone out, or it was reset), not until the call
  // ends: a finished call's response may still be queued.
  virtual size_t reserveResponseWindow(size_t wanted) { return wanted; }
  // Stop (true) or resume (false) returning request bytes to the client's
  // flow-control window: the terminal's outgoing buffer is full or drained.
  virtual void setRequestBackpressure(bool blocked) = 0;
  // Who to tell when the client reads the response too slowly (and catches up).
  virtual void setWatermarkCallbacks(WatermarkCallbacks* callbacks) = 0;

 protected:
  std::string path_;
  std::string_view service_;
  std::string_view method_;
  HeaderMap request_headers_;
  HeaderMap response_headers_;
  HeaderMap response_trailers_;
  std::string peer_address_;
  uint64_t connection_id_ = 0;
  int32_t stream_id_ = 0;
  std::string request_id_;
  StreamCounters counters_;
  Clock::time_point start_time_ = Clock::now();
  std::chrono::system_clock::time_point start_system_time_ = std::chrono::system_clock::now();
  uint32_t max_message_bytes_ = 16u << 20;
  std::optional<Clock::time_point> deadline_;
  const Route* route_ = nullptr;
  std::string upstream_address_;
  uint32_t upstream_attempts_ = 0;
  StatusCode status_ = StatusCode::Unknown;
  std::string status_message_;
  int http_status_ = 200;
  // The filter whose hook is running (set by the chain), so that the timers
  // and handles it asks for name it if their work fails.
  std::string_view running_filter_;

 private:
  friend class FilterChain;
  std::map<std::string, FilterStatePtr, std::less<>> filter_state_;
};

}  // namespace sluice
